"""The browser softphone's SIP account, handed to the agent it belongs to."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from ctl.agents import ice
from ctl.asterisk import webrtc
from ctl.errors import NotFound
from ctl.settings import AsteriskSettings
from ctl.store.db import Database
from ctl.store.models import Agent


class Phones:
    def __init__(self, db: Database, cfg: AsteriskSettings, key: str) -> None:
        self._db, self._key, self._ice = db, key, cfg.ice_servers
        # Browsers on the Asterisk host reach its HTTP server directly; remote agents go
        # through a TLS proxy (asterisk.webrtc_url, README "The browser softphone").
        self.ws_url = cfg.webrtc_url or f"ws://127.0.0.1:{cfg.http_port}/ws"

    async def account(self, agent_id: str, ready: bool) -> dict[str, Any]:
        """Where and as whom the agent's browser registers. The password is derived, not
        stored (ctl/asterisk/webrtc.py): only this agent's session ever sees it. `ready`:
        Asterisk is up (a browser pointed at a closed port only fills its console)."""
        async with self._db.session(readonly=True) as s:
            agent = await s.scalar(select(Agent).where(Agent.id == agent_id))
        if agent is None:
            raise NotFound(f"no agent {agent_id}")
        user = webrtc.endpoint(agent.username)
        host = urlsplit(self.ws_url).hostname or "127.0.0.1"
        return {"ws_url": self.ws_url, "sip_uri": f"sip:{user}@{host}", "username": user,
                "password": webrtc.password(self._key, agent.username, agent.sip_ha1),
                "realm": webrtc.REALM, "display_name": agent.display_name,
                "extension": agent.extension, "ready": ready,
                "ice_servers": ice.for_browser(self._ice, user),
                "ice_refresh": ice.refresh_after(self._ice)}
