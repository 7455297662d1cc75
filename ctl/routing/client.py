"""Routing operations from any node: straight to the engine's owner when this node is it,
through the cluster's command stream when another node leads. Both sides speak JSON."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol

from ctl.contacts.states import ContactState
from ctl.errors import BadRequest
from ctl.routing.cluster import Cluster
from ctl.routing.model import Step
from ctl.routing.service import RoutingService
from ctl.routing.store import steps_from_json, steps_to_json


class Routing(Protocol):
    """What HTTP handlers, adapters and the IVR may ask of routing."""

    async def enqueue(self, contact_id: str, queue: str, *, priority: int = 0,
                      steps: tuple[Step, ...] | None = None) -> None: ...
    async def end(self, contact_id: str, state: ContactState, reason: str) -> None: ...
    async def set_state(self, agent_id: str, state: str, reason: str = "") -> None: ...
    async def accept(self, agent_id: str, offer_id: str) -> None: ...
    async def decline(self, agent_id: str, offer_id: str) -> None: ...
    async def complete(self, agent_id: str, contact_id: str) -> None: ...
    async def end_wrapup(self, agent_id: str, contact_id: str) -> None: ...
    async def transfer(self, agent_id: str, contact_id: str, queue: str | None = None,
                       to_agent: str | None = None, hold: float = 0.0) -> None: ...
    async def consult(self, agent_id: str, contact_id: str, to_agent: str) -> None: ...
    async def end_consult(self, agent_id: str, contact_id: str, hand_over: bool) -> None: ...
    async def take_over(self, by: str, contact_id: str) -> None: ...
    async def reload_agent(self, agent_id: str) -> None: ...
    async def agent_status(self, agent_id: str) -> dict[str, Any]: ...
    async def agents(self) -> list[dict[str, Any]]: ...
    async def queues(self) -> list[dict[str, Any]]: ...


_OPS = frozenset({"enqueue", "end", "set_state", "accept", "decline", "complete",
                  "end_wrapup", "transfer", "consult", "end_consult", "take_over", "reload_agent",
                  "agent_status", "agents", "queues"})


class RemoteRouting:
    """`Routing` over the cluster: every call is answered by the leader, this node's own
    engine when it leads (a round trip through Redis and the leader's one-at-a-time
    command loop would only queue its own requests behind everyone's)."""

    def __init__(self, cluster: Cluster,
                 local: Callable[[], RoutingService | None] = lambda: None) -> None:
        self._cluster = cluster
        self._local = local

    async def _call(self, op: str, **args: Any) -> Any:
        core = self._local()
        if core is not None:
            return await handle(core, op, args)
        return await self._cluster.call(op, **args)

    async def enqueue(self, contact_id: str, queue: str, *, priority: int = 0,
                      steps: tuple[Step, ...] | None = None) -> None:
        await self._call("enqueue", contact_id=contact_id, queue=queue,
                         priority=priority,
                         steps=None if steps is None else steps_to_json(steps))

    async def end(self, contact_id: str, state: ContactState, reason: str) -> None:
        await self._call("end", contact_id=contact_id, state=state.value,
                         reason=reason)

    async def set_state(self, agent_id: str, state: str, reason: str = "") -> None:
        await self._call("set_state", agent_id=agent_id, state=state, reason=reason)

    async def accept(self, agent_id: str, offer_id: str) -> None:
        await self._call("accept", agent_id=agent_id, offer_id=offer_id)

    async def decline(self, agent_id: str, offer_id: str) -> None:
        await self._call("decline", agent_id=agent_id, offer_id=offer_id)

    async def complete(self, agent_id: str, contact_id: str) -> None:
        await self._call("complete", agent_id=agent_id, contact_id=contact_id)

    async def end_wrapup(self, agent_id: str, contact_id: str) -> None:
        await self._call("end_wrapup", agent_id=agent_id, contact_id=contact_id)

    async def transfer(self, agent_id: str, contact_id: str, queue: str | None = None,
                       to_agent: str | None = None, hold: float = 0.0) -> None:
        await self._call("transfer", agent_id=agent_id, contact_id=contact_id,
                         queue=queue, to_agent=to_agent, hold=hold)

    async def consult(self, agent_id: str, contact_id: str, to_agent: str) -> None:
        await self._call("consult", agent_id=agent_id, contact_id=contact_id,
                         to_agent=to_agent)

    async def end_consult(self, agent_id: str, contact_id: str, hand_over: bool) -> None:
        await self._call("end_consult", agent_id=agent_id, contact_id=contact_id,
                         hand_over=hand_over)

    async def take_over(self, by: str, contact_id: str) -> None:
        await self._call("take_over", by=by, contact_id=contact_id)

    async def reload_agent(self, agent_id: str) -> None:
        await self._call("reload_agent", agent_id=agent_id)

    async def agent_status(self, agent_id: str) -> dict[str, Any]:
        return dict(await self._call("agent_status", agent_id=agent_id))

    async def agents(self) -> list[dict[str, Any]]:
        return list(await self._call("agents"))

    async def queues(self) -> list[dict[str, Any]]:
        return list(await self._call("queues"))


async def handle(core: RoutingService, op: str, args: dict[str, Any]) -> Any:
    """The leader's side of RemoteRouting."""
    if op not in _OPS:
        raise BadRequest(f"unknown routing operation {op!r}")
    if op == "enqueue" and args.get("steps") is not None:
        args["steps"] = steps_from_json(args["steps"])
    if op == "end":
        args["state"] = ContactState(args["state"])
    result = getattr(core, op)(**args)
    return await result if inspect.isawaitable(result) else result
