"""Asterisk as one service: provision, render, run, supervise, apply agent changes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from ctl.asterisk import config, provision
from ctl.asterisk.config import AgentEndpoint
from ctl.asterisk.process import AsteriskProcess
from ctl.asterisk.secrets import load_or_create
from ctl.errors import ProvisionError
from ctl.settings import Settings
from ctl.telephony.ami import AmiClient

log = logging.getLogger(__name__)


class AsteriskService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.secrets = load_or_create(settings.data_dir)

    def process(self, agents: Sequence[AgentEndpoint] = (), build: bool = True,
                render: bool = True) -> AsteriskProcess:
        cfg = self.settings.asterisk
        inst = provision.ensure(cfg) if build else provision.locate(cfg)
        if inst is None:
            raise ProvisionError("Asterisk is not provisioned yet",
                                           hint="run `ctl asterisk up`")
        if render:
            lay = config.render_all(self.settings, inst, self.secrets, agents)
        else:
            lay = config.layout(self.settings, inst)
        return AsteriskProcess(inst, lay, cfg, self.secrets)

    async def up(self, agents: Sequence[AgentEndpoint] = ()) -> AsteriskProcess:
        proc = self.process(agents)
        await proc.start()
        return proc

    def down(self) -> bool:
        return self.process(build=False, render=False).stop()

    def status(self) -> dict[str, Any]:
        inst = provision.locate(self.settings.asterisk)
        if inst is None:
            return {"provisioned": False, "running": False}
        proc = self.process(build=False, render=False)
        return {"provisioned": True, "root": str(inst.root or "(host)"),
                "running": proc.pid() is not None, "pid": proc.pid(),
                "config": str(proc.lay.host("etc"))}

    async def apply_agents(self, ami: AmiClient, agents: Sequence[AgentEndpoint]) -> None:
        """New agent endpoints take effect without restarting Asterisk."""
        proc = self.process(build=False, render=False)
        config.render_agents(proc.lay, proc.inst, self.settings, self.secrets, agents)
        await ami.command("module reload res_pjsip.so")
        await ami.command("dialplan reload")

    async def supervise(self, proc: AsteriskProcess, stop: asyncio.Event) -> None:
        """Restart Asterisk when it dies, with backoff, until `stop` is set."""
        backoff = 1.0
        while not stop.is_set():
            if proc.proc is None:
                try:
                    await proc.start()
                    backoff = 1.0
                except Exception as e:
                    log.error("Asterisk restart failed: %s", e)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30)
                    continue
            assert proc.proc is not None
            rc = await asyncio.to_thread(proc.proc.wait)
            if stop.is_set():
                return
            log.error("Asterisk exited (status %s); restarting in %.0fs", rc, backoff)
            proc.pidfile.unlink(missing_ok=True)
            proc.proc = None
            await asyncio.sleep(backoff)
