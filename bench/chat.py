"""Web chat relay: visitor -> agent latency through ctl vs a bare aiohttp relay.

    .venv/bin/python -m bench.chat                       # 2,000 visitors, 500 msg/s, 10 s
    .venv/bin/python -m bench.chat --visitors 200 --rate 100 --seconds 5   # a quick check

Both targets are separate processes on this machine, driven by the same client: N
visitor websockets (the widget's protocol for ctl), one agent socket per 50 visitors.
ctl: every visitor chats with an agent (pre-chat form, first message routed, offer
accepted), then messages are sent at `rate` per second round robin; each is stored,
and pushed to the agent's /api/v1/ws. Latency: visitor send -> agent receive. The bare
relay forwards each frame to the agent socket and does nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.stack import postgres, tree_cpu
from ctl.agents.service import AgentService, RoutingChanges
from ctl.store.db import Database
from tests.integration.harness import CtlProcess, free_port

PER_AGENT = 50  # an agent's chat capacity (the most `ctl agents set` allows)


# --- the baseline: a bare relay ---------------------------------------------------------

def relay_app() -> web.Application:
    agents: dict[str, web.WebSocketResponse] = {}

    async def agent(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        agents[request.match_info["id"]] = ws
        async for _ in ws:
            pass
        return ws

    async def visitor(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        target = request.match_info["agent"]
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT and target in agents:
                await agents[target].send_str(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/a/{id}", agent)
    app.router.add_get("/v/{agent}", visitor)
    return app


# --- the load -----------------------------------------------------------------------------

class Probe:
    def __init__(self, pid: int) -> None:
        self.pid = pid  # the target's process: its CPU during the load is charged to it
        self.sent: dict[str, float] = {}
        self.lat: list[float] = []
        self.at: list[float] = []  # when each of `lat` was sent
        self.cpu = 0.0  # seconds of the target's CPU (its process tree) while driven
        self.client_cpu = 0.0

    def got(self, key: str) -> None:
        t0 = self.sent.pop(key, None)
        if t0 is not None:
            self.lat.append(time.perf_counter() - t0)
            self.at.append(t0)


async def drive(sockets: list[aiohttp.ClientWebSocketResponse], frame: Any, probe: Probe,
                rate: float, seconds: float) -> None:
    """Send `frame(i, key)` on sockets round robin at `rate`/s for `seconds`."""
    _say(f"sending {int(rate * seconds)} messages")
    cpu0, client0 = tree_cpu(probe.pid), time.process_time()
    n, start = int(rate * seconds), time.perf_counter()
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        key = f"k{i}"
        probe.sent[key] = time.perf_counter()
        await sockets[i % len(sockets)].send_str(frame(i, key))
    await asyncio.sleep(2.0)  # stragglers
    probe.cpu, probe.client_cpu = tree_cpu(probe.pid) - cpu0, time.process_time() - client0


async def bare(http: aiohttp.ClientSession, visitors: int, rate: float, seconds: float
               ) -> Probe:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.chat", "--serve-relay", str(port)])
    try:
        await _wait(f"http://127.0.0.1:{port}/a/x", http, ws=True)
        probe = Probe(proc.pid)
        base = f"ws://127.0.0.1:{port}"
        n_agents = (visitors + PER_AGENT - 1) // PER_AGENT
        readers, agent_socks = [], []
        for a in range(n_agents):
            ws = await http.ws_connect(f"{base}/a/{a}")
            agent_socks.append(ws)
            readers.append(asyncio.create_task(_read(ws, probe, lambda m: m["k"])))
        socks = [await http.ws_connect(f"{base}/v/{v // PER_AGENT}") for v in range(visitors)]
        await drive(socks, lambda i, k: json.dumps({"k": k, "text": "hello"}), probe, rate,
                    seconds)
        for t in readers:
            t.cancel()
        for s in socks + agent_socks:
            await s.close()
        return probe
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def through_ctl(http: aiohttp.ClientSession, visitors: int, rate: float,
                      seconds: float, data_dir: Path, pg: bool = False) -> Probe:
    async with contextlib.AsyncExitStack() as stack:
        extra = await stack.enter_async_context(postgres()) if pg else None
        return await _through_ctl(http, visitors, rate, seconds, data_dir, extra)
    raise AssertionError("unreachable")  # pragma: no cover


async def _through_ctl(http: aiohttp.ClientSession, visitors: int, rate: float,
                       seconds: float, data_dir: Path, extra: dict[str, str] | None
                       ) -> Probe:
    async with ctl_process(data_dir, extra) as (base, db_url, pid):
        n_agents = (visitors + PER_AGENT - 1) // PER_AGENT
        panels = await agents(http, base, db_url, n_agents)
        probe = Probe(pid)
        readers = [asyncio.create_task(_agent_loop(http, base, ws, probe)) for ws in panels]
        socks = []
        for v in range(visitors):
            ws = await http.ws_connect(f"{base.replace('http', 'ws')}/chat/ws")
            await ws.send_json({"type": "hello"})
            await ws.send_json({"type": "start", "name": f"v{v}", "email": f"v{v}@bench.test",
                                "text": "hi", "cid": "first"})
            socks.append(ws)
        _say(f"ctl: {len(panels)} agents, {len(socks)} visitors connected")
        drains = [asyncio.create_task(_assigned(ws)) for ws in socks]
        await asyncio.wait_for(asyncio.gather(*drains), 300)  # every chat has its agent
        await drive(socks, lambda i, k: json.dumps({"type": "message", "cid": k, "text": k}),
                    probe, rate, seconds)
        for t in readers:
            t.cancel()
        for s in socks + [ws for ws, _ in panels]:
            await s.close()
        return probe


async def _assigned(ws: aiohttp.ClientWebSocketResponse) -> None:
    async for msg in ws:
        if msg.type is aiohttp.WSMsgType.TEXT and '"assigned"' in msg.data:
            break
    asyncio.get_running_loop().create_task(_sink(ws))


async def _sink(ws: aiohttp.ClientWebSocketResponse) -> None:
    async for _ in ws:  # the visitor's echoes and acks: read, so nothing backs up
        pass


async def _agent_loop(http: aiohttp.ClientSession, base: str,
                      panel: tuple[aiohttp.ClientWebSocketResponse, str], probe: Probe) -> None:
    ws, token = panel
    auth = {"Authorization": f"Bearer {token}"}
    async for msg in ws:
        body = json.loads(msg.data)
        if body.get("type") == "offer":
            asyncio.get_running_loop().create_task(_accept(http, base, body, auth))
        elif body.get("type") == "message":
            probe.got(body["message"]["text"])


async def _accept(http: aiohttp.ClientSession, base: str, body: dict[str, Any],
                  auth: dict[str, str]) -> None:
    async with http.post(f"{base}/api/v1/offers/{body['offer']['id']}/accept",
                         headers=auth) as r:
        await r.read()


async def agents(http: aiohttp.ClientSession, base: str, db_url: str, n: int
                 ) -> list[tuple[aiohttp.ClientWebSocketResponse, str]]:
    db = Database(db_url)
    service = AgentService(db)
    out = []
    try:
        for a in range(n):
            user = f"bench{a}"
            _, password = await service.create(user, f"Agent {a}", str(6000 + a))
            await service.configure(user, RoutingChanges(
                capacity={"chat": PER_AGENT}, profile=[{"queue": "general", "priority": 1}]))
            async with http.post(f"{base}/api/v1/login",
                                 json={"username": user, "password": password}) as r:
                token = (await r.json())["token"]
            ws = await http.ws_connect(f"{base}/api/v1/ws")
            await ws.send_json({"token": token})
            await ws.receive()  # hello
            async with http.put(f"{base}/api/v1/me/state", json={"state": "available"},
                                headers={"Authorization": f"Bearer {token}"}) as r:
                await r.read()
            out.append((ws, token))
    finally:
        await db.close()
    return out


@contextlib.asynccontextmanager
async def ctl_process(data_dir: Path, extra: dict[str, str] | None = None
                      ) -> AsyncIterator[tuple[str, str, int]]:
    port = free_port()
    db_url = (extra or {}).get("CTL_DATABASE_URL") or f"sqlite+aiosqlite:///{data_dir}/ctl.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTL_")} | {
        "CTL_DATA_DIR": str(data_dir), "CTL_DATABASE_URL": db_url, "CTL_HTTP_PORT": str(port),
        "CTL_ASTERISK__HTTP_PORT": str(free_port()), "CTL_ASTERISK__AMI_PORT": str(free_port()),
        "CTL_LOG_LEVEL": "WARNING",
        "CTL_ROUTING": json.dumps({"queues": [{"name": "general", "offer_timeout": 120}],
                                   "sticky_wait": 0}),
        "CTL_CHANNELS": json.dumps({"rate_per_minute": 1e6, "rate_burst": 100000}),
        **(extra or {})}
    proc = CtlProcess(env, data_dir / "ctl.log")
    await proc.start(wait_ari=False)
    assert proc.proc is not None
    try:
        yield f"http://127.0.0.1:{port}", db_url, proc.proc.pid
    finally:
        proc.stop()


async def _read(ws: aiohttp.ClientWebSocketResponse, probe: Probe, key: Any) -> None:
    async for msg in ws:
        probe.got(key(json.loads(msg.data)))


async def _wait(url: str, http: aiohttp.ClientSession, ws: bool = False) -> None:
    for _ in range(200):
        with contextlib.suppress(aiohttp.ClientError, OSError):
            sock = await http.ws_connect(url)
            await sock.close()
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def _say(text: str) -> None:
    print(f"bench.chat: {text}", file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s)) - 1))] * 1000 if s else 0.0


async def main(args: argparse.Namespace) -> int:
    sent = int(args.rate * args.seconds)
    connector = aiohttp.TCPConnector(limit=0)  # thousands of sockets at once
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=None)) as http:
        base_probe = await bare(http, args.visitors, args.rate, args.seconds)
        _say(f"bare relay: {len(base_probe.lat)} relayed")
        data_dir = Path(tempfile.mkdtemp(prefix="ctl-bench-chat-"))
        try:
            ctl_probe = await through_ctl(http, args.visitors, args.rate, args.seconds,
                                          data_dir, args.pg)
        finally:
            if args.keep:
                _say(f"kept {data_dir} (ctl.log, ctl.db)")
            else:
                shutil.rmtree(data_dir, ignore_errors=True)
    print(f"{args.visitors} visitors, {args.rate:.0f} msg/s for {args.seconds:.0f} s "
          f"({sent} messages), ctl on {'PostgreSQL+Redis' if args.pg else 'SQLite'}\n")
    print(f"{'target':<12}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'lost':>7}"
          f"{'CPU ms/msg':>12}{'client CPU':>12}")
    for name, p in (("bare relay", base_probe), ("ctl", ctl_probe)):
        print(f"{name:<12}{pct(p.lat, 50):>9.1f}{pct(p.lat, 99):>9.1f}"
              f"{pct(p.lat, 100):>9.1f}{sent - len(p.lat):>7}{1000 * p.cpu / sent:>12.2f}"
              f"{100 * p.client_cpu / (args.seconds + 2):>11.0f}%")
    if ctl_probe.lat:
        worst = max(range(len(ctl_probe.lat)), key=ctl_probe.lat.__getitem__)
        t0 = min(ctl_probe.at)
        slow = sorted({int(at - t0) for at, lat in zip(ctl_probe.at, ctl_probe.lat, strict=True)
                       if lat > 0.05})
        print(f"\nctl: slowest message sent at {ctl_probe.at[worst] - t0:.2f} s; "
              f"seconds with messages over 50 ms: {slow}")
    p99, b99 = pct(ctl_probe.lat, 99), pct(base_probe.lat, 99)
    ok_abs, ok_ratio = p99 <= 50.0, p99 <= 2 * max(b99, 1.0)
    print(f"\nverdict: p99 {p99:.1f} ms {'<=' if ok_abs else '>'} 50 ms; "
          f"{p99 / max(b99, 0.001):.1f}x the bare relay's p99 (target <= 2x, "
          f"{'met' if ok_ratio else 'missed'})")
    lost = sent - len(ctl_probe.lat)
    return 1 if lost else (0 if ok_abs and ok_ratio else 2)


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.chat", description=__doc__.split("\n")[0])
    parser.add_argument("--visitors", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pg", action="store_true",
                        help="ctl on PostgreSQL + Redis (as bench.calls --pg)")
    parser.add_argument("--keep", action="store_true",
                        help="keep ctl's data directory (its log and database)")
    parser.add_argument("--serve-relay", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_relay:
        web.run_app(relay_app(), host="127.0.0.1", port=args.serve_relay, print=None,
                    shutdown_timeout=1)
        return 0
    return asyncio.run(main(args))


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
