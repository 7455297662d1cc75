"""The `ctl` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from ctl import logs, runtime
from ctl.agents.service import AgentService, RoutingChanges
from ctl.asterisk.process import AsteriskProcess
from ctl.asterisk.service import AsteriskService
from ctl.errors import ConfigError, CtlError
from ctl.ivr import cli as ivr_cli
from ctl.settings import Settings, load_settings
from ctl.store.models import Agent

T = TypeVar("T")

log = logging.getLogger("ctl")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        settings = load_settings(args.config)
        logs.setup(settings.log_level, settings.log_format)
        return int(args.func(settings, args) or 0)
    except CtlError as e:
        print(f"ctl: {e.render()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ctl", description="contact center controller")
    p.add_argument("--config", type=Path, help="YAML settings file (also $CTL_CONFIG)")
    sub = p.add_subparsers(metavar="COMMAND")
    sub.add_parser("up", help="provision and start Asterisk, migrate, serve").set_defaults(
        func=cmd_up)
    sub.add_parser("serve", help="serve (Asterisk already running)").set_defaults(func=cmd_serve)
    sub.add_parser("doctor", help="check every dependency").set_defaults(func=cmd_doctor)
    ast = sub.add_parser("asterisk", help="manage the local Asterisk").add_subparsers(
        metavar="ACTION", required=True)
    ast.add_parser("up", help="provision, configure and start").set_defaults(func=cmd_ast_up)
    ast.add_parser("down", help="stop").set_defaults(func=cmd_ast_down)
    ast.add_parser("status", help="show state").set_defaults(func=cmd_ast_status)
    cli = ast.add_parser("cli", help="Asterisk console, or run one CLI command")
    cli.add_argument("command", nargs="*")
    cli.set_defaults(func=cmd_ast_cli)
    db = sub.add_parser("db", help="database").add_subparsers(metavar="ACTION", required=True)
    db.add_parser("migrate", help="apply migrations").set_defaults(func=cmd_migrate)
    agents = sub.add_parser("agents", help="agents and their SIP endpoints").add_subparsers(
        metavar="ACTION", required=True)
    add = agents.add_parser("add", help="create an agent; prints its SIP password once")
    add.add_argument("username")
    add.add_argument("--name", required=True)
    add.add_argument("--extension", required=True)
    add.set_defaults(func=cmd_agent_add)
    conf = agents.add_parser("set", help="how an agent is routed (applies at its next login)")
    conf.add_argument("username")
    conf.add_argument("--skill", action="append", metavar="SKILL=LEVEL", help="level 1-5")
    conf.add_argument("--language", action="append", metavar="CODE")
    conf.add_argument("--queue", action="append", metavar="QUEUE[:PRIORITY[:DELAY]]",
                      help="routing profile entry; lower priority is served first")
    conf.add_argument("--capacity", action="append", metavar="CHANNEL=N")
    conf.add_argument("--tier", type=int)
    conf.add_argument("--role", choices=["agent", "supervisor", "admin"])
    conf.add_argument("--voice-exclusive", action=argparse.BooleanOptionalAction, default=None)
    conf.set_defaults(func=cmd_agent_set)
    pw = agents.add_parser("password", help="a new password (phone and panel), shown once")
    pw.add_argument("username")
    pw.set_defaults(func=cmd_agent_password)
    agents.add_parser("list").set_defaults(func=cmd_agent_list)
    rm = agents.add_parser("remove")
    rm.add_argument("username")
    rm.set_defaults(func=cmd_agent_remove)
    sim = sub.add_parser("simulate", help="run a scenario through the routing engine on a "
                         "virtual clock; print service level, ASA, abandonment, occupancy")
    sim.add_argument("scenario", type=Path, help="scenario YAML (see examples/simulate/)")
    sim.add_argument("--seed", type=int, help="random seed (default: the scenario's)")
    sim.add_argument("--json", action="store_true", help="print the figures as JSON")
    sim.set_defaults(func=cmd_simulate)
    plan = sub.add_parser("plan", help="agents needed for a service level target (Erlang C)")
    plan.add_argument("--rate", type=_number(0, None, False), required=True,
                      metavar="CALLS_PER_HOUR", help="contacts offered per hour")
    plan.add_argument("--aht", type=_number(0, None, False), required=True, metavar="SECONDS",
                      help="average handle time, wrap-up included")
    plan.add_argument("--sla", type=_number(0, None, True), required=True, metavar="SECONDS",
                      help="answered within this many seconds")
    plan.add_argument("--target", type=_number(0, 1, False), required=True, metavar="FRACTION",
                      help="fraction to answer within --sla, e.g. 0.8")
    plan.add_argument("--max-occupancy", type=_number(0, 1, False, top_ok=True), default=1.0,
                      metavar="FRACTION", help="cap on agent occupancy, e.g. 0.85")
    plan.add_argument("--shrinkage", type=_number(0, 1, True), default=0.0, metavar="FRACTION",
                      help="share of paid time off the phones (breaks, training), e.g. 0.3")
    plan.add_argument("--json", action="store_true", help="print the figures as JSON")
    plan.set_defaults(func=cmd_plan)
    ivr_cli.register(sub)
    return p


def _number(low: float, high: float | None, low_ok: bool, top_ok: bool = False
            ) -> Callable[[str], float]:
    """An argparse type: a number above `low` (or equal, if `low_ok`) and below `high`."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        above = v >= low if low_ok else v > low
        below = high is None or (v <= high if top_ok else v < high)
        if not (above and below):
            if high is None:
                raise argparse.ArgumentTypeError(f"{text} must be {'>=' if low_ok else '>'} "
                                                 f"{low:g}")
            raise argparse.ArgumentTypeError(f"{text} must be between {low:g} and {high:g} "
                                             "(a fraction: 0.8, not 80)")
        return v
    return parse


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    from ctl.store.db import migrate

    migrate(settings.db_url)
    print("database is at the latest migration")
    return 0


def cmd_simulate(_: Settings, args: argparse.Namespace) -> int:
    from ctl.routing.scenario import load_scenario
    from ctl.routing.simulate import simulate

    report = simulate(load_scenario(args.scenario), args.seed, args.scenario)
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.render())
    return 1 if report.problems else 0


def cmd_plan(_: Settings, args: argparse.Namespace) -> int:
    from ctl.routing.erlang import plan

    try:
        result = plan(args.rate, args.aht, args.sla, args.target, args.max_occupancy,
                      args.shrinkage)
    except ValueError as e:
        raise CtlError(str(e)) from None
    print(json.dumps(result.as_dict(), indent=2) if args.json else result.render())
    return 0


def cmd_doctor(settings: Settings, _: argparse.Namespace) -> int:
    from ctl import doctor

    running = bool(AsteriskService(settings).status().get("running"))
    checks = doctor.run(settings, running)
    for c in checks:
        mark = "ok  " if c.ok else "FAIL"
        print(f"[{mark}] {c.name}: {c.detail}" + ("" if c.ok else f"\n       fix: {c.fix}"))
    return 0 if all(c.ok for c in checks) else 1


def cmd_ast_up(settings: Settings, _: argparse.Namespace) -> int:
    proc = asyncio.run(_ast_up(AsteriskService(settings), settings))
    print(f"Asterisk is up (pid {proc.pid()}); SIP on {settings.asterisk.sip_host}:"
          f"{settings.asterisk.sip_port}/udp, ARI on 127.0.0.1:{settings.asterisk.http_port}")
    return 0


async def _ast_up(service: AsteriskService, settings: Settings,
                  first_admin: bool = False) -> AsteriskProcess:
    from ctl.store.db import Database, migrate

    await asyncio.to_thread(migrate, settings.db_url)
    db = Database(settings.db_url)
    try:
        agents = AgentService(db)
        if first_admin:
            await _first_admin(agents, settings)
        endpoints = await agents.endpoints()
    finally:
        await db.close()
    return await service.up(endpoints)


async def _first_admin(agents: AgentService, settings: Settings) -> None:
    """With no agent at all, create `admin` (every queue) so the desk can be opened at
    once. Its generated password is kept in `<data_dir>/admin-password` (0600) for the
    operator to read, since `up` prints it only on the run that created it."""
    if await agents.list():
        return
    _, password = await agents.create("admin", "Administrator", "2000")
    await agents.configure("admin", RoutingChanges(
        role="admin", profile=[{"queue": q.name} for q in settings.routing.queues],
        capacity={"chat": 3, "email": 3, "sms": 3, "wechat": 3, "task": 3}))
    path = settings.data_dir / "admin-password"
    path.touch(mode=0o600)
    path.write_text(password + "\n", encoding="utf-8")
    print(f"First login for the agent desktop: admin / {password} (also in {path}; "
          "`ctl agents password admin` makes a new one)", flush=True)


def cmd_ast_down(settings: Settings, _: argparse.Namespace) -> int:
    stopped = AsteriskService(settings).down()
    print("Asterisk stopped" if stopped else "Asterisk was not running")
    return 0


def cmd_ast_status(settings: Settings, _: argparse.Namespace) -> int:
    status = AsteriskService(settings).status()
    print(json.dumps(status, indent=2))
    return 0 if status.get("running") else 3


def cmd_ast_cli(settings: Settings, args: argparse.Namespace) -> int:
    argv = AsteriskService(settings).process(build=False, render=False).cli_command(*args.command)
    os.execvp(argv[0], argv)


def cmd_serve(settings: Settings, _: argparse.Namespace) -> int:
    asyncio.run(_serve(settings))
    return 0


async def _serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    from aiohttp import web

    from ctl.app import create_app

    runtime.tune()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.http_host, settings.http_port)
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        from ctl.errors import PortInUse

        raise PortInUse(f"cannot listen on {settings.http_host}:{settings.http_port}: "
                        f"{e.strerror}", hint="set http_port (CTL_HTTP_PORT)") from None
    log.info("serving", extra=logs.ctx(url=f"http://{settings.http_host}:{settings.http_port}"))
    runtime.settle()
    pacer = asyncio.create_task(runtime.pace())
    await stop.wait()
    pacer.cancel()
    await runner.cleanup()


def cmd_up(settings: Settings, _: argparse.Namespace) -> int:
    asyncio.run(_up(settings))
    return 0


async def _up(settings: Settings) -> None:
    service = AsteriskService(settings)
    proc = await _ast_up(service, settings, first_admin=True)
    stop = asyncio.Event()
    supervisor = asyncio.create_task(service.supervise(proc, stop))
    a = settings.asterisk
    flows = ", ".join(f"{n} {f}" for n, f in settings.ivr.numbers.items())
    print(f"Contact center up: call extension 1000 at sip:1000@{a.sip_host}:{a.sip_port} "
          f"(UDP), the IVR flows on {flows}; web on "
          f"http://{settings.http_host}:{settings.http_port}/healthz; the agent desktop at "
          f"http://{settings.http_host}:{settings.http_port}/desk/", flush=True)
    try:
        await _serve(settings, stop)
    finally:
        stop.set()
        proc.stop()
        await supervisor


def cmd_agent_add(settings: Settings, args: argparse.Namespace) -> int:
    async def add(agents: AgentService) -> str:
        _, password = await agents.create(args.username, args.name, args.extension)
        return password

    password = asyncio.run(_with_agents(settings, add, apply=True))
    print(f"agent {args.username}: SIP user agent-{args.username}, password {password}, "
          f"realm ctl, extension {args.extension} (the password is shown only now)")
    return 0


def cmd_agent_set(settings: Settings, args: argparse.Namespace) -> int:
    changes = RoutingChanges(
        skills=_pairs(args.skill, "--skill", int) if args.skill else None,
        languages=args.language, tier=args.tier, role=args.role,
        profile=[_profile_entry(q) for q in args.queue] if args.queue else None,
        capacity=_pairs(args.capacity, "--capacity", int) if args.capacity else None,
        voice_exclusive=args.voice_exclusive,
    )
    known = {q.name for q in settings.routing.queues}
    for entry in changes.profile or []:
        if entry["queue"] not in known:
            raise ConfigError(f"--queue {entry['queue']}: no such queue",
                              hint=f"configured queues: {', '.join(sorted(known))}")

    async def configure(agents: AgentService) -> Agent:
        return await agents.configure(args.username, changes)

    agent = asyncio.run(_with_agents(settings, configure, apply=False))
    print(f"agent {agent.username}: skills {agent.skills}, languages {agent.languages}, "
          f"queues {agent.profile}, capacity {agent.capacity}, tier {agent.tier}, "
          f"role {agent.role}")
    return 0


def cmd_agent_password(settings: Settings, args: argparse.Namespace) -> int:
    async def reset(agents: AgentService) -> str:
        return await agents.reset_password(args.username)

    password = asyncio.run(_with_agents(settings, reset, apply=True))
    print(f"agent {args.username}: new password {password} (shown only now)")
    return 0


def _pairs(items: list[str], flag: str, cast: Callable[[str], int]) -> dict[str, int]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            if not sep or not key:
                raise ValueError
            out[key] = cast(value)
        except ValueError:
            raise ConfigError(f"{flag} {item!r}: expected NAME=NUMBER") from None
    return out


def _profile_entry(text: str) -> dict[str, Any]:
    queue, *rest = text.split(":")
    try:
        priority = int(rest[0]) if rest else 1
        delay = float(rest[1]) if len(rest) > 1 else 0.0
    except ValueError:
        raise ConfigError(f"--queue {text!r}: expected QUEUE[:PRIORITY[:DELAY]]") from None
    return {"queue": queue, "priority": priority, "delay": delay}


def cmd_agent_list(settings: Settings, args: argparse.Namespace) -> int:
    async def list_(agents: AgentService) -> list[Agent]:
        return await agents.list()

    for a in asyncio.run(_with_agents(settings, list_, apply=False)):
        print(f"{a.username}\t{a.extension}\t{a.display_name}\t{a.state}")
    return 0


def cmd_agent_remove(settings: Settings, args: argparse.Namespace) -> int:
    async def remove(agents: AgentService) -> None:
        await agents.delete(args.username)

    asyncio.run(_with_agents(settings, remove, apply=True))
    print(f"agent {args.username} removed")
    return 0


async def _with_agents(settings: Settings, action: Callable[[AgentService], Awaitable[T]],
                       apply: bool) -> T:
    """Run `action`, then push the agents' endpoints to a running Asterisk (no restart)."""
    from ctl.store.db import Database, migrate
    from ctl.telephony.ami import AmiClient

    await asyncio.to_thread(migrate, settings.db_url)
    db = Database(settings.db_url)
    try:
        agents = AgentService(db)
        result = await action(agents)
        service = AsteriskService(settings)
        if apply and service.status().get("running"):
            ami = AmiClient("127.0.0.1", settings.asterisk.ami_port, "ctl",
                            service.secrets.ami_secret)
            ami.start()
            try:
                await ami.wait_connected()
                await service.apply_agents(ami, await agents.endpoints())
            finally:
                await ami.close()
        return result
    finally:
        await db.close()
