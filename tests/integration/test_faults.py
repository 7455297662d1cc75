"""Crashes and cuts: whatever fails, a contact that entered reaches a final state.

These tests restart Asterisk and kill ctl, so they run on an Asterisk and a ctl of
their own, with ctl reaching ARI through a proxy the test can cut.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from ctl.asterisk.process import AsteriskProcess
from ctl.asterisk.service import AsteriskService
from ctl.errors import NotFound
from ctl.settings import load_settings
from ctl.store.db import Database
from ctl.store.models import Contact
from tests.integration import sip
from tests.integration.harness import (
    Caller,
    CtlProcess,
    caller_app,
    eventually,
    free_port,
    slot,
)
from tests.integration.media_phone import MediaPhone
from tests.integration.proxy import CuttableProxy
from tests.integration.test_calls import assert_nothing_left, events_of, final_contact
from tests.integration.test_voice_queue import contact_of, has_event, new_agent, ring

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
async def fault_env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, str]]:
    data_dir = tmp_path_factory.mktemp("faults")
    http_port = free_port()
    yield {
        "CTL_DATA_DIR": str(data_dir),
        "CTL_ASTERISK__SIP_PORT": str(free_port()),
        "CTL_ASTERISK__HTTP_PORT": str(http_port),
        "CTL_ASTERISK__AMI_PORT": str(free_port()),
        "CTL_ASTERISK__RTP_START": str(30000 + slot(27) * 100),  # see ast_env
        "CTL_ASTERISK__RTP_END": str(30099 + slot(27) * 100),
        "CTL_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir}/ctl-{uuid.uuid4().hex}.db",
        "CTL_HTTP_PORT": str(free_port()),
        # Callbacks ring agents' extensions: a test's SIP phone plays the customer. Queue
        # "callbacks" (1101) is the callback test's own.
        "CTL_ROUTING": json.dumps({"queues": [{"name": "general"}, {"name": "callbacks"}],
                                   "sticky_wait": 0,
                                   "callback_dial": "Local/{number}@agents",
                                   "callback_ring": 30, "callback_retry_after": 1}),
    }


@pytest.fixture(scope="module")
async def f_asterisk(fault_env: dict[str, str]) -> AsyncIterator[AsteriskProcess]:
    # The session's CTL_* (exported by the integration conftest once any test has used
    # its Asterisk) win over load_settings() overrides: without them, ours apply.
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("CTL_")]:
            mp.delenv(name)
        settings = load_settings(**_as_settings(fault_env))
    proc = await AsteriskService(settings).up()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
async def proxy(f_asterisk: AsteriskProcess) -> AsyncIterator[CuttableProxy]:
    p = CuttableProxy(f_asterisk.cfg.http_port)
    await p.start()
    yield p
    await p.stop()


@pytest.fixture(scope="module")
async def f_ctl(fault_env: dict[str, str], proxy: CuttableProxy) -> AsyncIterator[CtlProcess]:
    env = {**fault_env, "CTL_ASTERISK__ARI_URL": f"http://127.0.0.1:{proxy.port}"}
    proc = CtlProcess(env, Path(fault_env["CTL_DATA_DIR"]) / "ctl.log")
    await proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
async def f_caller(f_asterisk: AsteriskProcess) -> AsyncIterator[Caller]:
    async with caller_app(f_asterisk.cfg.http_port, f_asterisk.secrets.ari_password) as c:
        yield c


@pytest.fixture(scope="module")
async def f_db(fault_env: dict[str, str]) -> AsyncIterator[Database]:
    database = Database(fault_env["CTL_DATABASE_URL"])
    yield database
    await database.close()


def _as_settings(env: dict[str, str]) -> dict[str, object]:
    return {
        "data_dir": env["CTL_DATA_DIR"],
        "asterisk": {k.removeprefix("CTL_ASTERISK__").lower(): int(v)
                     for k, v in env.items() if k.startswith("CTL_ASTERISK__")},
        "routing": json.loads(env["CTL_ROUTING"]),  # its queues' numbers in the dialplan
    }


async def test_controller_killed_mid_ivr_then_restarted_adopts_the_call(
        f_ctl: CtlProcess, f_caller: Caller, f_db: Database) -> None:
    ours, theirs = await f_caller.call("1000", caller_id="+15551239001")
    await f_caller.wait(ours, "StasisStart")  # answered: the caller is in the IVR
    f_ctl.kill()
    await f_ctl.start()
    await f_caller.wait(ours, "ChannelDestroyed", timeout=20)
    contact = await final_contact(f_db, theirs)
    assert (contact.state, contact.close_reason) == ("closed", "completed")
    kinds = [(e.kind, (e.data or {}).get("action")) for e in await events_of(f_db, contact.id)]
    assert ("call", "adopted") in kinds
    await assert_nothing_left(f_caller, [ours, theirs])


async def test_caller_leaving_while_controller_is_down_is_closed_on_restart(
        f_ctl: CtlProcess, f_caller: Caller, f_db: Database) -> None:
    ours, theirs = await f_caller.call("1000", caller_id="+15551239002")
    await f_caller.wait(ours, "StasisStart")
    f_ctl.kill()
    await f_caller.ari.hangup(ours)
    await f_caller.wait(ours, "ChannelDestroyed")
    await f_ctl.start()
    contact = await final_contact(f_db, theirs)
    assert (contact.state, contact.close_reason) == ("closed", "ended_while_controller_away")


async def test_caller_waiting_in_a_queue_keeps_the_place_across_a_controller_crash(
        f_ctl: CtlProcess, f_caller: Caller, f_db: Database) -> None:
    ours, theirs = await f_caller.call("1100", caller_id="+15551239005")  # queue general

    async def queued() -> Contact | None:
        async with f_db.session(readonly=True) as s:
            row = await s.scalar(select(Contact).where(Contact.external_ref == theirs))
        return row if row is not None and row.state == "queued" else None

    before = await eventually(queued, 15, "the call to wait in its queue")
    f_ctl.kill()
    await f_ctl.start()
    # Adopted by the new controller, still waiting, in the same place.
    async def adopted() -> bool:
        return any(e.kind == "call" and e.data.get("action") == "adopted"
                   for e in await events_of(f_db, before.id))

    await eventually(adopted, 15, "the waiting call to be adopted")
    after = await queued()
    assert after is not None and after.enqueued_at == before.enqueued_at
    await f_caller.ari.hangup(ours)  # and a caller who gives up is recorded as such
    contact = await final_contact(f_db, theirs)
    assert (contact.state, contact.close_reason) == ("abandoned", "caller_hangup")
    await assert_nothing_left(f_caller, [ours, theirs])


async def test_reconnect_sweep_keeps_callbacks_and_abandons_callers_who_left(
        f_ctl: CtlProcess, f_caller: Caller, f_db: Database, proxy: CuttableProxy) -> None:
    kept_ours, kept = await f_caller.call("1100", caller_id="1999")
    left_ours, left = await f_caller.call("1100", caller_id="+15551239006")

    async def state_of(channel: str) -> str | None:
        async with f_db.session(readonly=True) as s:
            return await s.scalar(select(Contact.state).where(Contact.external_ref == channel))

    for channel in (kept, left):
        await eventually(lambda ch=channel: _is(state_of(ch), "queued"), 15, "queued calls")
    await f_caller.ari.request("POST", f"/channels/{kept_ours}/dtmf", dtmf="1")
    await f_caller.wait(kept_ours, "ChannelDestroyed", timeout=15)  # left to be called back
    proxy.cut()
    try:
        await f_caller.ari.hangup(left_ours)  # gives up while the controller cannot see
        await f_caller.wait(left_ours, "ChannelDestroyed")
    finally:
        proxy.restore()
    await eventually(lambda: f_ctl.health(need_ari=True), 20, "ctl to reconnect to ARI")
    contact = await final_contact(f_db, left)
    # Its session hears of the end from the resync (or, had it died, the sweep ends it).
    assert contact.state == "abandoned"
    assert contact.close_reason in ("caller_hangup", "ended_while_controller_away")
    assert await state_of(kept) == "queued"  # the sweep left the callback in its place


async def _is(value: Awaitable[str | None], expected: str) -> bool:
    return await value == expected


async def _app_gone(caller: Caller, app: str) -> bool:
    try:
        await caller.ari.application(app)
    except NotFound:
        return True
    return False


async def test_call_while_controller_is_down_hears_an_apology(
        f_ctl: CtlProcess, f_caller: Caller, f_db: Database, f_asterisk: AsteriskProcess
        ) -> None:
    f_ctl.stop()
    # Asterisk drops the app only once the websocket's close has reached it through the
    # proxy (which runs on this loop); a call placed before that enters Stasis() and
    # waits there for a controller instead of hearing the apology.
    await eventually(lambda: _app_gone(f_caller, f_asterisk.cfg.app), 10,
                     "Asterisk to unregister the controller's ARI app")
    try:
        ours, theirs = await f_caller.call("1000", caller_id="+15551239003")
        await f_caller.wait(ours, "StasisStart")  # answered by the dialplan fallback
        assert await f_caller.ari.get_var(theirs, "STASISSTATUS") == "FAILED"
        await f_caller.wait(ours, "ChannelDestroyed", timeout=20)
    finally:
        await f_ctl.start()


async def test_ari_cut_mid_prompt_loses_events_and_resync_recovers(
        f_ctl: CtlProcess, f_caller: Caller, f_db: Database, proxy: CuttableProxy) -> None:
    ours, theirs = await f_caller.call("1000", caller_id="+15551239004")
    # Watch the controller's leg too, to know when its prompt ends while ctl cannot.
    await f_caller.ari.request("POST", f"/applications/{f_caller.ari.app}/subscription",
                               eventSource=f"channel:{theirs}")
    await f_caller.wait(theirs, "PlaybackStarted")
    proxy.cut()
    try:
        await f_caller.wait(theirs, "PlaybackFinished", timeout=15)
        assert not (await f_ctl.health(need_ari=False) or {}).get("checks", {}).get(
            "ari", {}).get("ok")
    finally:
        proxy.restore()
    await f_caller.wait(ours, "ChannelDestroyed", timeout=20)
    contact = await final_contact(f_db, theirs)
    assert (contact.state, contact.close_reason) == ("closed", "completed")
    events = await events_of(f_db, contact.id)
    prompts = [e.data["state"] for e in events if e.kind == "prompt"]
    adopted = [e for e in events if e.kind == "call" and e.data.get("action") == "adopted"]
    # Normally the lost PlaybackFinished is detected over REST after the reconnect; if the
    # cut also broke the play request's response, the call is adopted and replayed.
    assert prompts[-1] == "done_unobserved" or (adopted and prompts[-1] == "done"), events


async def test_asterisk_restart_controller_reconnects_and_new_calls_work(
        f_ctl: CtlProcess, f_caller: Caller, f_db: Database,
        f_asterisk: AsteriskProcess) -> None:
    f_asterisk.stop()
    await eventually(lambda: _ari_down(f_ctl), 15, "ctl to notice Asterisk is gone")
    await f_asterisk.start()
    await eventually(lambda: f_ctl.health(need_ari=True), 20, "ctl to reconnect to ARI")
    await eventually(_ami_up(f_ctl), 20, "ctl to log in to AMI again")
    await f_caller.stream.connected.wait()
    ours, theirs = await f_caller.call("1000", caller_id="+15551239005")
    await f_caller.wait(ours, "ChannelDestroyed", timeout=20)
    contact = await final_contact(f_db, theirs)
    assert contact.close_reason == "completed"


def _ami_up(ctl: CtlProcess):  # type: ignore[no-untyped-def]
    async def probe() -> bool:
        body = await ctl.health(need_ari=False)
        return body is not None and body["checks"]["ami"]["ok"]

    return probe


async def _ari_down(ctl: CtlProcess) -> bool:
    body = await ctl.health(need_ari=False)
    return body is not None and not body["checks"]["ari"]["ok"]


async def test_controller_killed_while_a_callback_is_dialled_requeues_it_in_its_place(
        f_ctl: CtlProcess, f_asterisk: AsteriskProcess, f_caller: Caller, f_db: Database,
        fault_env: dict[str, str]) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CTL_")}, **fault_env}
    async with aiohttp.ClientSession() as http:
        agent = await new_agent(env, f_asterisk, f_ctl, http)
        customer = await new_agent(env, f_asterisk, f_ctl, http)  # only its phone is used
        await sip.ctl_command(env, "agents", "set", agent.username, "--queue", "callbacks")
        # The agent answers both attempts; the customer misses the first, takes the second.
        agent_phone = await ring(agent, "agent_phone_hung_up.xml", "-m", "2")
        customer_phone = await ring(customer, "customer_misses_then_answers.xml", "-m", "2")
        ours, theirs = await f_caller.call("1101", caller_id=customer.extension)
        queued = await contact_of(f_db, theirs, states=("queued",))
        await f_caller.ari.request("POST", f"/channels/{ours}/dtmf", dtmf="1")
        await f_caller.wait(ours, "ChannelDestroyed", timeout=15)  # left to be called back
        assert agent.panel is not None
        await agent.panel.state("available")
        await eventually(lambda: has_event(f_db, queued.id, "callback", "dialling"), 20,
                         "the customer to be dialled")
        f_ctl.kill()  # the agent reserved, the customer's phone ringing
        await f_ctl.start()
        # 60 s: the restart, the re-queue, the agent's phone answering and the customer's
        # (after a second): the whole test takes ~20 s; in one of ~8 full runs 30 s ran out.
        await eventually(lambda: has_event(f_db, queued.id, "callback", "answered"), 60,
                         "the second attempt to be answered")
        async with f_db.session(readonly=True) as s:
            row = await s.get(Contact, queued.id)
            assert row is not None
        await f_caller.ari.hangup(row.attributes["callback"]["legs"][1])  # the customer
        (await sip.finish(customer_phone, 30)).check()  # missed (cancelled), then talked
        (await sip.finish(agent_phone, 30)).check()  # hung up by the new controller, then talked
        contact = await contact_of(f_db, theirs)
        assert (contact.state, contact.close_reason) == ("closed", "completed")
        assert contact.enqueued_at == queued.enqueued_at  # the place it kept
        events = await events_of(f_db, contact.id)
        callbacks = [(e.data["action"], e.data.get("attempt")) for e in events
                     if e.kind == "callback"]
        assert callbacks == [("requested", None), ("dialling", 1), ("interrupted", 1),
                             ("dialling", 2), ("answered", 2)], callbacks
        states = [(e.to_state, e.reason) for e in events if e.kind == "state"]
        assert [to for to, _ in states] == ["new", "ivr", "queued", "offered", "assigned",
                                            "queued", "offered", "assigned", "closed"], states
        assert states[5][1] == "transferred"  # back in the queue with its age, not completed
        await agent.panel.state("offline")


async def test_controller_killed_while_a_supervisor_listens_hangs_up_their_phone(
        f_ctl: CtlProcess, f_asterisk: AsteriskProcess, f_caller: Caller, f_db: Database,
        fault_env: dict[str, str]) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CTL_")}, **fault_env}
    async with aiohttp.ClientSession() as http:
        agent = await new_agent(env, f_asterisk, f_ctl, http)
        sup = await new_agent(env, f_asterisk, f_ctl, http)
        await sip.ctl_command(env, "agents", "set", sup.username, "--role", "supervisor")
        agent_phone, sup_phone = (await MediaPhone(agent.port).open(),
                                  await MediaPhone(sup.port).open())
        assert agent.panel is not None and sup.panel is not None
        try:
            # Agents earlier tests left available (their phones gone) would get the call.
            for other in (await sup.panel.call("GET", "/api/v1/agents"))["agents"]:
                if other["id"] != agent.panel.agent_id and other.get("status") != "offline":
                    await sup.panel.call("PUT", f"/api/v1/agents/{other['id']}/state",
                                         {"state": "offline"})
            # So would contacts they left waiting (callbacks to callers long gone).
            async with f_db.session(readonly=True) as s:
                waiting = list(await s.scalars(select(Contact.id).where(
                    Contact.state.in_(("queued", "offered")))))
            for left in waiting:
                await sup.panel.call("POST", f"/api/v1/contacts/{left}/abandon")
            await agent.panel.state("available")
            ours, theirs = await f_caller.call("1100")
            contact = (await contact_of(f_db, theirs, states=("assigned",))).id

            async def listen() -> bool:  # "assigned" is stored before the call is bridged
                try:
                    await sup.panel.call("POST", f"/api/v1/contacts/{contact}/monitor",
                                         {"mode": "listen"})
                except AssertionError as e:
                    if "not connected yet" in str(e):
                        return False
                    raise
                return True

            await eventually(listen, 20, "the call to be bridged")
            await eventually(lambda: has_event(f_db, contact, "monitor", "started"), 20,
                             "the supervisor to be listening")
            f_ctl.kill()
            await f_ctl.start()
            # Hung up by the new controller, not adopted; so is the agent's (an agent-leg).
            await asyncio.wait_for(sup_phone.ended.wait(), 20)
            await asyncio.wait_for(agent_phone.ended.wait(), 20)

            async def no_snoop() -> bool:
                return not [c for c in await f_caller.ari.channels()
                            if c["name"].startswith("Snoop/")]

            await eventually(no_snoop, 10, "the snoop channel to be gone")
            await f_caller.ari.hangup(ours)
            await contact_of(f_db, theirs)  # the call still reaches a final state
        finally:
            await agent_phone.close()
            await sup_phone.close()
