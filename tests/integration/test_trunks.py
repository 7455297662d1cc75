"""SIP trunks from settings, with sipp as the carrier, against an Asterisk of their own.

Trunks are rendered into PJSIP when Asterisk starts, so this module runs its own Asterisk
(and `ctl serve`) with one trunk, `carrier1`, whose carrier is 127.0.0.2: on Linux every
127.x address is loopback, and a carrier address of its own keeps identify-by-address from
catching the other local SIP traffic. 127.0.0.3 plays a stranger.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from ctl.asterisk.process import AsteriskProcess
from ctl.asterisk.service import AsteriskService
from ctl.contacts.states import FINAL
from ctl.settings import Settings, load_settings
from ctl.store.db import Database
from ctl.store.models import Contact, ContactEvent
from tests.integration import sip
from tests.integration.harness import CtlProcess, eventually, free_port, slot

CARRIER, STRANGER = "127.0.0.2", "127.0.0.3"
TRUNK = "carrier1"
USER = "acct123"
SECRET = "s3cr;et-pw"  # a ';' starts a comment in Asterisk's config: it must be escaped
DID, OTHER_DID = "+15550100", "+15550199"
CALLER_ID = "+15550100"
DEFAULT_FLOW = "overflow"  # not a flow the controller knows: it runs the demo instead


# --- one Asterisk with one trunk, and a controller -------------------------------------

@pytest.fixture(scope="module")
def carrier_port() -> int:
    return sip.udp_port_on(CARRIER)


@pytest.fixture(scope="module")
def trunk_env(tmp_path_factory: pytest.TempPathFactory, carrier_port: int) -> dict[str, str]:
    data_dir = tmp_path_factory.mktemp("trunk")
    rtp = 20000 + slot(200) * 50
    trunk = {"name": TRUNK, "host": CARRIER, "port": carrier_port, "username": USER,
             "password": SECRET, "register": True, "match": [CARRIER],
             "dids": {DID: "demo"}, "default_flow": DEFAULT_FLOW, "caller_id": CALLER_ID}
    return {
        "CTL_DATA_DIR": str(data_dir),
        "CTL_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir}/ctl.db",
        "CTL_HTTP_PORT": str(free_port()),
        "CTL_ASTERISK__SIP_PORT": str(free_port(socket.SOCK_DGRAM)),
        "CTL_ASTERISK__HTTP_PORT": str(free_port()),
        "CTL_ASTERISK__AMI_PORT": str(free_port()),
        "CTL_ASTERISK__RTP_START": str(rtp),
        "CTL_ASTERISK__RTP_END": str(rtp + 49),
        # Every process of this instance (Asterisk's renderer, ctl serve, ctl agents add,
        # which re-renders the dialplan) must see the same trunks.
        "CTL_TRUNKS": json.dumps([trunk]),
        "CTL_LOG_FORMAT": "json",
    }


def own_env(env: dict[str, str]) -> dict[str, str]:
    """The environment with this instance's CTL_* variables only (the session's are set)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CTL_")}
    return {**base, **env}


@pytest.fixture(scope="module")
def trunk_settings(trunk_env: dict[str, str]) -> Iterator[Settings]:
    with pytest.MonkeyPatch.context() as mp:
        for k in [k for k in os.environ if k.startswith("CTL_")]:
            mp.delenv(k)
        for k, v in trunk_env.items():
            mp.setenv(k, v)
        settings = load_settings()
    assert [t.name for t in settings.trunks] == [TRUNK]
    yield settings


@pytest.fixture(scope="module")
async def registrar(carrier_port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    """The carrier's registrar: listening before Asterisk starts and registers."""
    proc = await sip.serve("uas_registrar_auth.xml", CARRIER, carrier_port, "-key", "user", USER,
                     "-key", "secret", SECRET)
    yield proc
    await sip.kill(proc)


@pytest.fixture(scope="module")
async def trunk_asterisk(trunk_settings: Settings, registrar: asyncio.subprocess.Process
                         ) -> AsyncIterator[AsteriskProcess]:
    proc = await AsteriskService(trunk_settings).up()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
async def trunk_ctl(trunk_asterisk: AsteriskProcess, trunk_env: dict[str, str]
                    ) -> AsyncIterator[CtlProcess]:
    proc = CtlProcess(trunk_env, Path(trunk_env["CTL_DATA_DIR"]) / "ctl.log")
    proc.env = own_env(trunk_env)
    await proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
async def trunk_db(trunk_env: dict[str, str]) -> AsyncIterator[Database]:
    db = Database(trunk_env["CTL_DATABASE_URL"])
    yield db
    await db.close()


async def cli(proc: AsteriskProcess, command: str) -> str:
    p = await asyncio.create_subprocess_exec(
        *proc.cli_command(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = await asyncio.wait_for(p.communicate(), 15)
    return out.decode(errors="replace")


@pytest.fixture(scope="module")
async def registration(trunk_asterisk: AsteriskProcess,
                       registrar: asyncio.subprocess.Process) -> tuple[sip.Sipp, str]:
    """The registrar's verdict (it exits after one registration), then Asterisk's view."""
    verdict = await sip.finish(registrar, 40)

    async def registered() -> str | None:
        out = await cli(trunk_asterisk, "pjsip show registrations")
        return out if re.search(rf"^\s*{TRUNK}/\S+\s+\S+\s+Registered", out, re.M) else None

    state = ""
    if verdict.rc == 0:
        with contextlib.suppress(AssertionError):
            state = await eventually(registered, 10, "Asterisk to see the registration")
    if not state:
        state = await cli(trunk_asterisk, "pjsip show registrations")
    return verdict, state


# --- helpers on the stored contacts ----------------------------------------------------

async def contact_of(db: Database, caller: str, timeout: float = 15) -> Contact:
    """The final contact of the call from `caller` (each test uses its own number)."""
    async def probe() -> Contact | None:
        async with db.session() as s:
            rows = await s.execute(select(Contact).where(Contact.state.in_(list(FINAL))))
            return next((c for c in rows.scalars() if c.attributes.get("caller") == caller),
                        None)

    return await eventually(probe, timeout, f"the contact of the call from {caller}")


async def prompts_of(db: Database, contact_id: str) -> list[dict[str, object]]:
    async with db.session() as s:
        rows = await s.execute(select(ContactEvent).where(ContactEvent.contact_id == contact_id)
                               .order_by(ContactEvent.id))
        return [e.data for e in rows.scalars() if e.kind == "prompt"]


def new_caller() -> str:
    return "+1555" + str(2000000 + uuid.uuid4().int % 7000000)


async def carrier_call(service: str, did: str, caller: str, source: str = CARRIER,
                       scenario: str = "uac_carrier_wait_bye.xml", *,
                       asterisk: AsteriskProcess) -> sip.Sipp:
    return await sip.run(scenario, "-s", service, "-key", "did", did, "-key", "caller", caller,
                          f"127.0.0.1:{asterisk.cfg.sip_port}", "-i", source, "-p", "0")


# --- tests -----------------------------------------------------------------------------

async def test_trunk_registers_with_digest_auth(registration: tuple[sip.Sipp, str]) -> None:
    verdict, state = registration
    verdict.check()  # the registrar challenged, and the digest was right for USER/SECRET
    assert re.search(rf"^\s*{TRUNK}/sip:{re.escape(CARRIER)}:\d+\s+{TRUNK}-auth\s+Registered",
                     state, re.M), state


async def test_carrier_call_to_a_did_runs_its_flow(
        trunk_ctl: CtlProcess, trunk_asterisk: AsteriskProcess, trunk_db: Database) -> None:
    caller = new_caller()
    (await carrier_call(DID, DID, caller, asterisk=trunk_asterisk)).check()
    contact = await contact_of(trunk_db, caller)
    assert contact.state == "closed" and contact.close_reason == "completed"
    assert contact.attributes["did"] == DID
    assert contact.attributes["flow"] == "demo"
    # The customer's own number, not the trunk's: the carrier's From is the caller.
    assert contact.attributes["caller"] == caller
    prompts = await prompts_of(trunk_db, contact.id)
    assert prompts and prompts[0]["state"] == "done", prompts
    assert isinstance(prompts[0]["ms"], int) and prompts[0]["ms"] > 500


async def test_unmapped_did_falls_to_the_default_flow(
        trunk_ctl: CtlProcess, trunk_asterisk: AsteriskProcess, trunk_db: Database) -> None:
    caller = new_caller()
    (await carrier_call(OTHER_DID, OTHER_DID, caller, asterisk=trunk_asterisk)).check()
    contact = await contact_of(trunk_db, caller)
    assert contact.close_reason == "completed"
    assert contact.attributes["did"] == OTHER_DID
    assert contact.attributes["flow"] == DEFAULT_FLOW


async def test_call_to_the_registered_contact_is_routed_by_to(
        trunk_ctl: CtlProcess, trunk_asterisk: AsteriskProcess, trunk_db: Database) -> None:
    # Carriers often send the call to sip:USER@us (the contact we registered) and name the
    # dialled number only in To.
    caller = new_caller()
    (await carrier_call(USER, DID, caller, asterisk=trunk_asterisk)).check()
    contact = await contact_of(trunk_db, caller)
    assert contact.close_reason == "completed"
    assert (contact.attributes["did"], contact.attributes["flow"]) == (DID, "demo")


async def test_other_source_address_is_not_the_trunk(
        trunk_ctl: CtlProcess, trunk_asterisk: AsteriskProcess, trunk_db: Database) -> None:
    # From 127.0.0.3 the caller is anonymous, which only reaches [public]: the DID is
    # unknown there and the INVITE is refused with 404.
    caller = new_caller()
    (await carrier_call(DID, DID, caller, STRANGER, "uac_rejected_404.xml",
                        asterisk=trunk_asterisk)).check()
    async with trunk_db.session() as s:
        rows = await s.execute(select(Contact))
        assert not [c for c in rows.scalars() if c.attributes.get("caller") == caller]


async def test_agent_dials_out_through_the_trunk_with_its_caller_id(
        trunk_ctl: CtlProcess, trunk_asterisk: AsteriskProcess, trunk_env: dict[str, str],
        registration: tuple[sip.Sipp, str], carrier_port: int, tmp_path: Path) -> None:
    # The registrar has exited (registration fixture): the carrier's port is free again.
    username = f"out{uuid.uuid4().hex[:6]}"
    password = await sip.add_agent(own_env(trunk_env), username, "Olga Out", "2101")

    trace = tmp_path / "carrier.msg"
    carrier = await sip.serve("uas_carrier_answer_bye.xml", CARRIER, carrier_port, "-trace_msg",
                        "-message_file", str(trace))
    try:
        agent = await sip.run(
            "uac_auth_wait_bye.xml", "-s", "+15559990001", "-key", "caller",
            f"agent-{username}", "-au", f"agent-{username}", "-ap", password,
            f"127.0.0.1:{trunk_asterisk.cfg.sip_port}", "-i", "127.0.0.1", "-p", "0")
        far = await sip.finish(carrier, 40)
    finally:
        await sip.kill(carrier)
    agent.check()
    far.check()
    text = trace.read_text()
    invite = text[text.index("INVITE sip:"):].split("\n\n", 1)[0]  # its head
    head = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", invite, re.M))
    assert re.search(r"INVITE sip:\+15559990001@", invite), invite
    assert f"<sip:{CALLER_ID}@" in head["From"], invite
    assert "Olga" not in head["From"], invite  # the agent's name stays inside
    assert f"<sip:{CALLER_ID}@" in head["P-Asserted-Identity"], invite
