"""Agents' SIP endpoints: `ctl agents add` creates one in the database and applies it to the
running Asterisk without restarting it; sipp then registers and calls as the agent's phone.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from sqlalchemy import select

from ctl.asterisk.process import AsteriskProcess
from ctl.contacts.states import FINAL
from ctl.errors import NotFound
from ctl.store.db import Database
from ctl.store.models import Contact
from tests.integration import sip
from tests.integration.harness import Caller, CtlProcess, eventually


async def asterisk_status(caller: Caller) -> dict[str, Any]:
    info = await caller.ari.info()
    return dict(info["status"])


async def endpoint_state(caller: Caller, endpoint: str) -> str | None:
    try:
        found = await caller.ari.request("GET", f"/endpoints/PJSIP/{endpoint}")
    except NotFound:
        return None
    return str(found["state"])


async def contact_from(db: Database, caller_number: str, timeout: float = 15) -> Contact:
    async def probe() -> Contact | None:
        async with db.session() as s:
            rows = await s.execute(select(Contact).where(Contact.state.in_(list(FINAL))))
            return next((c for c in rows.scalars()
                         if c.attributes.get("caller") == caller_number), None)

    return await eventually(probe, timeout, f"the contact of the call from {caller_number}")


async def test_agent_added_by_cli_registers_and_calls_without_restart(
        asterisk: AsteriskProcess, ast_env: dict[str, str], backend: dict[str, str],
        ctl: CtlProcess, db: Database, caller: Caller) -> None:
    env = {**os.environ, **ast_env, **backend}
    sip_at = [f"127.0.0.1:{asterisk.cfg.sip_port}", "-i", "127.0.0.1", "-p", "0"]
    pid, started = asterisk.pid(), await asterisk_status(caller)
    assert pid is not None

    username = f"it{uuid.uuid4().hex[:8]}"
    extension = str(2000000 + uuid.uuid4().int % 1000000)
    endpoint = f"agent-{username}"
    password = await sip.add_agent(env, username, "Ada Agent", extension)

    # Applied by a reload of the running Asterisk, not by a restart.
    now = await asterisk_status(caller)
    assert asterisk.pid() == pid and asterisk.proc is not None and asterisk.proc.poll() is None
    assert now["startup_time"] == started["startup_time"]
    assert now["last_reload_time"] != started["last_reload_time"]
    assert await endpoint_state(caller, endpoint) is not None

    # The agent's phone registers with the password printed once...
    login = ["-key", "caller", endpoint, "-au", endpoint]
    (await sip.run("uac_register.xml", *login, "-ap", password, *sip_at)).check()
    assert await endpoint_state(caller, endpoint) == "online"
    # ...and a wrong password is refused.
    (await sip.run("uac_register_refused.xml", *login, "-ap", password + "x", *sip_at)).check()

    # The agent calls the demo number: answered by the controller, played, recorded with
    # the agent's endpoint caller id (not what the phone claimed in From).
    (await sip.run("uac_auth_wait_bye.xml", "-s", "1000", *login, "-ap", password,
                   *sip_at)).check()
    contact = await contact_from(db, extension)
    assert contact.close_reason == "completed"
    assert contact.attributes["flow"] == "demo"
    assert contact.attributes["caller_name"] == "Ada Agent"

    # Removing the agent is applied the same way: its phone can no longer register.
    out = await sip.ctl_command(env, "agents", "remove", username)
    assert f"agent {username} removed" in out
    # (ARI keeps a removed endpoint's record, offline: only SIP says it is gone.)
    assert await endpoint_state(caller, endpoint) in (None, "offline")
    (await sip.run("uac_register_refused.xml", *login, "-ap", password, *sip_at)).check()

    assert asterisk.pid() == pid
    assert (await asterisk_status(caller))["startup_time"] == started["startup_time"]
