"""Published flows: versions in the database, the current one of each name in memory.

A call takes a snapshot of the current flows when it starts and keeps it (so it finishes
on the versions it started with); publishing swaps the dictionary, never a flow in it.
The folder is watched (a changed file is validated and published within a second; a
broken one is reported and the previous version stays), and versions another process
published (`ctl flows publish`) are picked up from the database the same way."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ctl.errors import ConfigError
from ctl.ivr.flow import Flow, parse
from ctl.ivr.validate import Known, check
from ctl.store.db import Database
from ctl.store.models import FlowVersion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    name: str
    version: int
    new: bool  # False: this exact source was already the current version


def load_folder(folder: Path, known: Known) -> tuple[dict[str, Flow], list[ConfigError]]:
    """Every flow file of `folder`, parsed and checked; the broken ones as errors."""
    flows: dict[str, Flow] = {}
    errors: list[ConfigError] = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            flow = parse(path.read_text(encoding="utf-8"), path)
        except ConfigError as e:
            errors.append(e)
            continue
        if flow.name in flows:
            errors.append(ConfigError(f"{path}:1:1: flow {flow.name!r} is also defined in "
                                      f"{flows[flow.name].path}"))
            continue
        flows[flow.name] = flow
    names = frozenset(flows) | (known.flows or frozenset())
    for name, flow in list(flows.items()):
        try:
            check(flow, Known(known.queues, known.skills, names, known.agents))
        except ConfigError as e:
            errors.append(e)
            del flows[name]
    return flows, errors


class FlowRegistry:
    def __init__(self, db: Database, folder: Path | None,
                 known: Callable[[], Known], watch_every: float | None = 1.0) -> None:
        self.db, self.folder, self.known = db, folder, known
        self.current: Mapping[str, Flow] = {}
        self.watch_every = watch_every
        self._stamps: dict[Path, tuple[float, int]] = {}
        self._task: asyncio.Task[None] | None = None
        self.errors: list[str] = []  # the folder's problems, as last seen
        # Told of flows that just became current (e.g. to synthesize their prompts).
        self.on_new: Callable[[list[Flow]], Awaitable[None]] | None = None

    async def start(self) -> None:
        await self.refresh()
        if self.watch_every:
            self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def snapshot(self) -> Mapping[str, Flow]:
        return self.current

    async def _watch(self) -> None:
        assert self.watch_every
        while True:
            await asyncio.sleep(self.watch_every)
            try:
                await self.refresh()
            except Exception:
                log.exception("refreshing flows failed")

    async def refresh(self) -> list[Published]:
        """Publish changed files of the folder, then load what the database has newer."""
        published: list[Published] = []
        if self.folder is not None and self._folder_changed():
            known = self.known()
            flows, errors = load_folder(self.folder, Known(
                known.queues, known.skills, frozenset(self.current) | (known.flows or
                                                                         frozenset()),
                known.agents))
            self.errors = [str(e) for e in errors]
            for e in errors:
                log.error("flow not published: %s", e)
            if flows:
                published = await self.publish(list(flows.values()), by="folder")
        await self._load_newer()
        return published

    def _folder_changed(self) -> bool:
        assert self.folder is not None
        stamps = {}
        for p in self.folder.glob("*.yaml"):
            with contextlib.suppress(OSError):
                st = p.stat()
                stamps[p] = (st.st_mtime, st.st_size)
        changed = stamps != self._stamps
        self._stamps = stamps
        return changed

    async def publish(self, flows: list[Flow], by: str | None = None) -> list[Published]:
        """Store each flow as its next version (unless its source is the current one)."""
        def work(s: Session) -> list[Published]:
            out = []
            for flow in flows:
                latest = s.scalars(select(FlowVersion).where(FlowVersion.name == flow.name)
                                   .order_by(FlowVersion.version.desc()).limit(1)).first()
                if latest is not None and latest.sha256 == flow.sha256:
                    out.append(Published(flow.name, latest.version, False))
                    continue
                version = (latest.version if latest else 0) + 1
                s.add(FlowVersion(name=flow.name, version=version, sha256=flow.sha256,
                                  source=flow.source, path=str(flow.path), published_by=by))
                out.append(Published(flow.name, version, True))
            return out

        published = await self.db.write(work)
        for p in published:
            if p.new:
                log.info("flow %s: version %d published", p.name, p.version)
        await self._load_newer()
        return published

    async def _load_newer(self) -> None:
        async with self.db.session(readonly=True) as s:
            latest: dict[str, int] = {name: version for name, version in (await s.execute(
                select(FlowVersion.name, func.max(FlowVersion.version))
                .group_by(FlowVersion.name))).all()}
            stale = [n for n, v in latest.items()
                     if n not in self.current or self.current[n].version != v]
            if not stale:
                return
            rows = (await s.scalars(select(FlowVersion).where(
                FlowVersion.name.in_(stale)))).all()
        current = dict(self.current)
        for row in rows:
            if row.version != latest[row.name]:
                continue
            try:
                flow = parse(row.source, Path(row.path or f"{row.name}.yaml"))
            except ConfigError as e:  # validated when published; a newer ctl may differ
                log.error("flow %s version %d no longer parses: %s", row.name, row.version, e)
                continue
            current[row.name] = _versioned(flow, row.version)
        fresh = [f for n, f in current.items() if self.current.get(n) is not f]
        self.current = current  # one swap: a call's snapshot never changes under it
        if self.on_new is not None and fresh:
            try:
                await self.on_new(fresh)
            except Exception:  # prompts are then synthesized on first use
                log.exception("preparing new flows failed")

    async def versions(self, name: str | None = None) -> list[FlowVersion]:
        async with self.db.session(readonly=True) as s:
            q = select(FlowVersion).order_by(FlowVersion.name, FlowVersion.version)
            if name:
                q = q.where(FlowVersion.name == name)
            return list((await s.scalars(q)).all())


def _versioned(flow: Flow, version: int) -> Flow:
    return replace(flow, version=version)
