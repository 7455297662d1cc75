"""Supervision from any node: the leader holds the alerts and the calls, so a follower
asks it through the cluster's command stream, like routing operations."""

from __future__ import annotations

from typing import Any, Protocol

from ctl.errors import BadRequest
from ctl.routing.cluster import Cluster
from ctl.supervision.service import SupervisionService

PREFIX = "supervision."


class Supervision(Protocol):
    async def overview(self) -> dict[str, Any]: ...
    async def monitor(self, supervisor_id: str, contact_id: str, mode: str
                      ) -> dict[str, Any]: ...
    async def unmonitor(self, supervisor_id: str, contact_id: str) -> None: ...


class RemoteSupervision:
    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    async def overview(self) -> dict[str, Any]:
        return dict(await self._cluster.call(PREFIX + "overview"))

    async def monitor(self, supervisor_id: str, contact_id: str, mode: str
                      ) -> dict[str, Any]:
        return dict(await self._cluster.call(PREFIX + "monitor", supervisor_id=supervisor_id,
                                             contact_id=contact_id, mode=mode))

    async def unmonitor(self, supervisor_id: str, contact_id: str) -> None:
        await self._cluster.call(PREFIX + "unmonitor", supervisor_id=supervisor_id,
                                 contact_id=contact_id)


async def handle(service: SupervisionService, op: str, args: dict[str, Any]) -> Any:
    """The leader's side of RemoteSupervision (`op` without its prefix)."""
    if op not in ("overview", "monitor", "unmonitor"):
        raise BadRequest(f"unknown supervision operation {op!r}")
    return await getattr(service, op)(**args)
