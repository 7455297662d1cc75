"""`ctl flows ...`: check, simulate, publish and list IVR flows, and write their schema."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from ctl.errors import ConfigError
from ctl.ivr import schema
from ctl.ivr.flow import Flow
from ctl.ivr.registry import load_folder
from ctl.ivr.validate import Known
from ctl.settings import Settings


def register(sub: Any) -> None:
    flows = sub.add_parser("flows", help="IVR flows: check, simulate, publish").add_subparsers(
        metavar="ACTION", required=True)
    check = flows.add_parser("check", help="validate flow files (default: the flows folder)")
    check.add_argument("paths", nargs="*", type=Path)
    check.set_defaults(func=cmd_check)
    sim = flows.add_parser("simulate", help="run a flow without a phone")
    sim.add_argument("flow", help="a flow name, or a simulation script (.yaml)")
    sim.add_argument("--script", action="append", type=Path, default=[],
                     help="a simulation script (repeatable); see ivr_flows/simulations")
    sim.add_argument("--input", action="append", default=[], dest="inputs",
                     help='what the caller does next: keys ("2", "12345#"), '
                     '"say: words", or "" for silence (repeatable, in order)')
    sim.set_defaults(func=cmd_simulate)
    pub = flows.add_parser("publish", help="validate and publish as new versions (running "
                           "controllers take them within a second)")
    pub.add_argument("paths", nargs="*", type=Path)
    pub.set_defaults(func=cmd_publish)
    ver = flows.add_parser("versions", help="published versions")
    ver.add_argument("name", nargs="?")
    ver.set_defaults(func=cmd_versions)
    flows.add_parser("schema", help="write flow.schema.json into the flows folder"
                     ).set_defaults(func=cmd_schema)


def known(settings: Settings) -> Known:
    """What a flow may name, as far as the settings tell (the server adds agents' skills)."""
    queues = frozenset(q.name for q in settings.routing.queues)
    skills = frozenset(s for q in settings.routing.queues for st in q.steps for s in st.skills)
    return Known(queues=queues, skills=skills or None)


def _load(settings: Settings, paths: list[Path]) -> tuple[dict[str, Flow], list[ConfigError]]:
    flows: dict[str, Flow] = {}
    errors: list[ConfigError] = []
    folders = [p for p in paths if p.is_dir()] or ([] if paths else [settings.flows_dir])
    files = [p for p in paths if not p.is_dir()]
    base = known(settings)
    for folder in folders:
        found, errs = load_folder(folder, base)
        flows.update(found)
        errors += errs
    if files:  # single files may use the flows folder's other flows
        others = frozenset(load_folder(settings.flows_dir, base)[0]) if settings.flows_dir \
            .is_dir() else frozenset()
        for path in files:
            if not path.exists():
                errors.append(ConfigError(f"{path}: no such file"))
                continue
            found, errs = _one(path, Known(base.queues, base.skills, others))
            flows.update(found)
            errors += errs
    return flows, errors


def _one(path: Path, known: Known) -> tuple[dict[str, Flow], list[ConfigError]]:
    from ctl.ivr.flow import parse
    from ctl.ivr.validate import check

    try:
        flow = parse(path.read_text(encoding="utf-8"), path)
        check(flow, known)
    except ConfigError as e:
        return {}, [e]
    return {flow.name: flow}, []


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    flows, errors = _load(settings, args.paths)
    for flow in flows.values():
        print(f"ok  {flow.name}  ({len(flow.steps)} steps, {', '.join(flow.languages)})  "
              f"{flow.path}")
    for e in errors:
        print(e)
    return 1 if errors or not flows else 0


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    from ctl.ivr.simulate import Script, coverage, load_script, simulate

    flows, errors = _load(settings, [])
    if errors:
        raise ConfigError("\n".join(str(e) for e in errors))
    scripts: list[tuple[str, Script]] = [(str(p), load_script(p)) for p in args.script]
    if args.flow.endswith((".yaml", ".yml")):
        scripts.insert(0, (args.flow, load_script(Path(args.flow))))
    elif not scripts or args.inputs:
        scripts.insert(0, ("--input", Script(flow=args.flow, inputs=args.inputs)))
    results = []
    for label, script in scripts:
        name = script.flow or args.flow
        if name not in flows:
            raise ConfigError(f"{label}: no flow named {name!r} (flows: {', '.join(flows)})")
        result = asyncio.run(simulate(flows, name, script))
        results.append(result)
        print(f"== {label}")
        for line in _report(result):
            print("  " + line)
    print("== coverage")
    for name, (seen, total, missing) in coverage(flows, results).items():
        print(f"  {name}: {seen}/{total} steps" + (f"; never: {', '.join(missing)}"
                                                   if missing else ""))
    return 0


def _report(result: Any) -> list[str]:
    lines = ["path: " + " > ".join(result.path)]
    lines += [f"said: {s}" for s in result.said]
    lines += [f"{kind}: {data}" for kind, data in result.events]
    shown = {k: v for k, v in result.vars.items() if not k.startswith("_")}
    lines.append(f"vars: {shown}")
    if result.unused_inputs:
        lines.append(f"inputs never asked for: {result.unused_inputs}")
    return lines


def cmd_publish(settings: Settings, args: argparse.Namespace) -> int:
    flows, errors = _load(settings, args.paths)
    for e in errors:
        print(e)
    if errors:
        return 1

    async def go() -> list[Any]:
        from ctl.ivr.registry import FlowRegistry
        from ctl.store.db import Database, migrate

        await asyncio.to_thread(migrate, settings.db_url)
        db = Database(settings.db_url)
        try:
            registry = FlowRegistry(db, None, lambda: Known(), watch_every=None)
            return await registry.publish(list(flows.values()), by="cli")
        finally:
            await db.close()

    for p in asyncio.run(go()):
        print(f"{p.name}: version {p.version}" + ("" if p.new else " (unchanged)"))
    return 0


def cmd_versions(settings: Settings, args: argparse.Namespace) -> int:
    async def go() -> list[Any]:
        from ctl.ivr.registry import FlowRegistry
        from ctl.store.db import Database

        db = Database(settings.db_url)
        try:
            return await FlowRegistry(db, None, lambda: Known()).versions(args.name)
        finally:
            await db.close()

    for v in asyncio.run(go()):
        print(f"{v.name}  v{v.version}  {v.published_at:%Y-%m-%d %H:%M:%S}  "
              f"{v.published_by or ''}  {v.sha256[:12]}  {v.path or ''}")
    return 0


def cmd_schema(settings: Settings, _: argparse.Namespace) -> int:
    print(schema.write(settings.flows_dir))
    return 0
