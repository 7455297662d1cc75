"""The agent desktop in headless Chromium: panel load time and JS heap with 50 open
conversations (1,000 messages) and a customer whose 360 timeline holds 1,000 entries,
and the time from an offer (the routing engine creates it) to its toast on screen; each
against an empty panel (an agent holding nothing) measured in the same run.

    .venv/bin/python -m bench.desk                     # 5 loads and 20 offers per panel
    .venv/bin/python -m bench.desk --loads 2 --offers 5 --conversations 10   # quick

ctl runs in this process on SQLite (no Asterisk: the desk needs none), Debian's Chromium
in its own processes, both panels in one browser, measured alternately so a busy
machine slows both alike.

- load: navigation start -> every module mounted (body[data-ready]), the conversation
  list and every conversation's messages read and the first one shown, and (loaded
  panel) the first page of the customer's timeline rendered; recorded in the page by a
  MutationObserver (performance.now(), no polling delay).
- memory: JSHeapUsedSize and DOM nodes from CDP Performance.getMetrics after a forced
  garbage collection; for the loaded panel also once every timeline page (1,000
  entries) has been scrolled in.
- offer -> toast: the engine's offer time (its expires_at minus the queue's offer
  timeout: the same wall clock) -> the first animation frame after the toast node was
  added (performance.timeOrigin + now()).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import Browser, BrowserContext, Page
from sqlalchemy import insert

from ctl.agents.service import RoutingChanges
from ctl.channels.contract import Outgoing
from ctl.services import Services
from ctl.store.models import Base, new_id, utcnow
from tests.integration.agent_api import Panel
from tests.integration.channels_app import isolated_settings, running
from tests.integration.desk_browser import chromium, login
from tests.integration.harness import free_port

OFFER_TIMEOUT = 120.0
CHANNELS = ("voice", "chat", "email", "sms", "wechat")
# Records when the panel is loaded, in the page itself. TABS and TIMELINE are filled in.
READY = """(() => {
  window.__bench = { loaded: null, ready: null, toasts: {} };
  const check = () => {
    const b = window.__bench;
    if (b.ready === null && document.body && document.body.dataset.ready === 'true') {
      b.ready = performance.now();
    }
    if (b.loaded === null) {
      const conv = document.querySelector('[data-region=conversations]');
      const ok = document.body && document.body.dataset.ready === 'true' && conv
        && conv.dataset.loaded === 'true'
        && document.querySelectorAll('.conv-tab').length === TABS
        && (!TABS || document.querySelector('.conv-log li.msg'))
        && (!TIMELINE || document.querySelector('.c360-timeline li'));
      if (ok) b.loaded = performance.now();
    }
    for (const t of document.querySelectorAll('.toast[data-offer]')) {
      const id = t.dataset.offer;
      if (id in b.toasts) continue;
      b.toasts[id] = null;
      requestAnimationFrame(() => { b.toasts[id] = performance.timeOrigin + performance.now(); });
    }
  };
  new MutationObserver(check).observe(document, { subtree: true, childList: true,
                                                  attributes: true });
})();"""

# The offers pushed to the page (their expires_at: when the engine made them).
OFFERS = """window.__offers = [];
const __wait = setInterval(() => {
  if (!window.desk) return;
  clearInterval(__wait);
  desk.on('offer', (m) => window.__offers.push(m.offer));
}, 5);"""


class NullSender:
    """The API channel's replies go nowhere (the bench needs them stored, not sent)."""

    async def send(self, out: Outgoing) -> str | None:
        return None


async def agent(services: Services, name: str, queue: str, role: str = "agent") -> str:
    ext = str(5000000 + uuid.uuid4().int % 1000000)
    _, password = await services.agents.create(name, name.title(), ext)
    await services.agents.configure(name, RoutingChanges(
        role=role, capacity={"api": 50, "sms": 5},
        profile=[{"queue": queue, "priority": 1, "delay": 0}] if queue else []))
    return password


async def seed(base: str, http: aiohttp.ClientSession, services: Services, busy: str,
               busy_pw: str, sup: Panel, conversations: int, messages: int, timeline: int
               ) -> None:
    """`conversations` contacts held by `busy`, `messages` each (a third of them the
    agent's replies), and `timeline` past contacts of the first one's customer."""
    panel = await Panel(base, http).login(busy, busy_pw)
    await panel.listen()
    await panel.state("available")
    for i in range(conversations):
        await sup.call("POST", "/api/v1/messages", {
            "channel": "api", "customer": {"kind": "email", "value": f"c{i}@bench.test",
                                           "name": f"Customer {i}"},
            "text": f"Hello, this is customer {i}", "thread": f"t{i}", "queue": "q-busy",
            "subject": f"Question {i}"}, expect=201)
        offer = await panel.next("offer")
        await panel.call("POST", f"/api/v1/offers/{offer['offer']['id']}/accept")
        contact = offer["offer"]["contact_id"]
        for n in range(1, messages):
            if n % 3 == 2:
                await panel.call("POST", f"/api/v1/contacts/{contact}/messages",
                                 {"text": f"Answer {n} to customer {i}"}, expect=201)
            else:
                await sup.call("POST", "/api/v1/messages", {
                    "channel": "api", "customer": {"kind": "email", "value": f"c{i}@bench.test"},
                    "text": f"Message {n} from customer {i}: " + "lorem ipsum " * 8,
                    "thread": f"t{i}", "queue": "q-busy"}, expect=201)
    held = (await panel.call("GET", "/api/v1/me/conversations"))["conversations"]
    assert len(held) == conversations, len(held)
    customer = held[0]["customer_id"]
    now = utcnow()
    rows = [{"id": new_id(), "channel": CHANNELS[k % len(CHANNELS)], "customer_id": customer,
             "queue_id": None, "state": "closed", "priority": 0, "attributes": {},
             "criteria": [], "external_ref": None, "node": None,
             "created_at": now - timedelta(hours=k + 1), "updated_at": now,
             "closed_at": now - timedelta(hours=k + 1) + timedelta(minutes=5),
             "close_reason": "completed", "enqueued_at": None, "agent_id": None,
             "version": 1} for k in range(timeline - 1)]  # + the open contact: `timeline`
    if rows:
        await services.db.write(lambda s: s.execute(insert(Base.metadata.tables["contacts"]), rows))
    await panel.close()


async def load(ctx: BrowserContext, base: str, tabs: int) -> tuple[Page, float]:
    page = await ctx.new_page()
    await page.goto(f"{base}/desk/")
    await page.wait_for_function("() => window.__bench && window.__bench.loaded !== null",
                                 polling=50, timeout=120_000)
    return page, float(await page.evaluate("window.__bench.loaded"))


async def heap(page: Page) -> tuple[float, int]:
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("HeapProfiler.collectGarbage")
    await cdp.send("Performance.enable")
    metrics = {m["name"]: m["value"] for m in
               (await cdp.send("Performance.getMetrics"))["metrics"]}
    await cdp.detach()
    return metrics["JSHeapUsedSize"] / 2**20, int(metrics["Nodes"])


async def scroll_timeline(page: Page, expected: int) -> None:
    """Bring in every timeline page (the "more" button: what scrolling does)."""
    more = page.locator(".c360-more")
    while await more.is_visible():
        before = await page.locator(".c360-timeline li").count()
        await more.click()
        await page.wait_for_function(
            f"() => document.querySelectorAll('.c360-timeline li').length > {before}")
    shown = await page.locator(".c360-timeline li").count()
    assert shown >= expected, f"the timeline shows {shown} of {expected} entries"


async def offer_to_toast(page: Page, sup: Panel, n: int, queue: str) -> float:
    """One offer to the page's agent: ms from the engine's offer to the toast's frame."""
    await sup.call("POST", "/api/v1/messages", {
        "channel": "sms", "customer": {"kind": "email", "value": f"o{n}-{queue}@bench.test"},
        "text": "an offer", "thread": f"o{n}-{queue}", "queue": queue}, expect=201)
    toast = page.locator(".toast[data-offer]")
    await toast.wait_for(timeout=30_000)
    offer = await toast.get_attribute("data-offer")
    shown = await page.wait_for_function(
        "(id) => window.__bench.toasts[id] || null", arg=offer, polling=50)
    at = float(await shown.json_value())
    push = await page.evaluate(
        "(id) => window.__offers.find((o) => o.id === id)", offer)
    created = (push["expires_at"] - OFFER_TIMEOUT) * 1000
    await sup.call("POST", f"/api/v1/contacts/{push['contact_id']}/abandon")
    await toast.wait_for(state="detached", timeout=30_000)
    return float(at - created)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-desk-"))
    settings = isolated_settings(
        data_dir=data_dir, database_url=f"sqlite+aiosqlite:///{data_dir}/desk.db",
        node_id=f"bench-{uuid.uuid4().hex[:6]}",
        asterisk={"http_port": free_port(), "ami_port": free_port()},
        routing={"queues": [{"name": q, "offer_timeout": OFFER_TIMEOUT}
                            for q in ("q-empty", "q-busy")], "sticky_wait": 0},
        channels={"rate_burst": 1_000_000, "rate_per_minute": 1_000_000})
    async with running(settings) as app, aiohttp.ClientSession() as http:
        services = app.services
        services.outbound.register("api", NullSender())
        passwords = {name: await agent(services, name, queue) for name, queue in
                     (("bench-empty", "q-empty"), ("bench-busy", "q-busy"))}
        sup = await Panel(app.base, http).login(
            "bench-sup", await agent(services, "bench-sup", "", "supervisor"))
        t0 = time.perf_counter()
        await seed(app.base, http, services, "bench-busy", passwords["bench-busy"], sup,
                   args.conversations, args.messages, args.timeline)
        print(f"seeded {args.conversations} conversations x {args.messages} messages and "
              f"{args.timeline} timeline entries in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)
        async with chromium() as browser:
            return await measure(browser, app.base, passwords, sup, args)


async def measure(browser: Browser, base: str, passwords: dict[str, str], sup: Panel,
                  args: argparse.Namespace) -> dict[str, Any]:
    tabs = {"empty": 0, "busy": args.conversations}
    contexts: dict[str, BrowserContext] = {}
    for kind in ("empty", "busy"):
        ctx = contexts[kind] = await browser.new_context()
        page = await ctx.new_page()
        await login(page, base, f"bench-{kind}", passwords[f"bench-{kind}"])
        await page.close()
        await ctx.add_init_script(READY.replace("TABS", str(tabs[kind]))
                                  .replace("TIMELINE", "true" if tabs[kind] else "false"))
        await ctx.add_init_script(OFFERS)
    loads: dict[str, list[float]] = {"empty": [], "busy": []}
    heaps: dict[str, list[tuple[float, int]]] = {"empty": [], "busy": []}
    for round_ in range(args.loads + 1):  # the first round warms caches up, unmeasured
        for kind in ("empty", "busy"):
            page, ms = await load(contexts[kind], base, tabs[kind])
            if round_:
                loads[kind].append(ms)
                heaps[kind].append(await heap(page))
            await page.close()
    pages = {kind: (await load(contexts[kind], base, tabs[kind]))[0] for kind in tabs}
    for page in pages.values():
        await page.select_option("#agent-state", "available")
        await page.wait_for_selector("[data-region=topbar][data-state=available]")
    toast: dict[str, list[float]] = {"empty": [], "busy": []}
    for n in range(args.offers):
        for kind, queue in (("empty", "q-empty"), ("busy", "q-busy")):
            toast[kind].append(await offer_to_toast(pages[kind], sup, n, queue))
    started = time.perf_counter()
    await scroll_timeline(pages["busy"], args.timeline)
    scrolled = time.perf_counter() - started
    full = await heap(pages["busy"])
    for ctx in contexts.values():
        await ctx.close()
    return {"load": loads, "heaps": heaps, "toast": toast, "full": full,
            "scrolled": scrolled}


def report(r: dict[str, Any], args: argparse.Namespace) -> None:
    def row(name: str, empty: float, busy: float, unit: str) -> None:
        ratio = busy / empty if empty else float("nan")
        print(f"| {name} | {empty:.1f} {unit} | {busy:.1f} {unit} | {ratio:.2f}x |")

    le, lb = r["load"]["empty"], r["load"]["busy"]
    he = statistics.median(h for h, _ in r["heaps"]["empty"])
    hb = statistics.median(h for h, _ in r["heaps"]["busy"])
    ne = statistics.median(n for _, n in r["heaps"]["empty"])
    nb = statistics.median(n for _, n in r["heaps"]["busy"])
    te, tb = r["toast"]["empty"], r["toast"]["busy"]
    print(f"\nbench.desk: {args.conversations} conversations x {args.messages} messages, "
          f"{args.timeline} timeline entries; {args.loads} loads and {args.offers} offers "
          "per panel\n")
    print(f"| measure | empty panel | {args.conversations} conversations + "
          f"{args.timeline} timeline | ratio |")
    print("| --- | --- | --- | --- |")
    row("load p50", statistics.median(le), statistics.median(lb), "ms")
    row("load max", max(le), max(lb), "ms")
    row("JS heap after load", he, hb, "MiB")
    row(f"JS heap, all {args.timeline} timeline entries shown", he, r["full"][0], "MiB")
    row("DOM nodes after load", ne, nb, "")
    row(f"DOM nodes, all {args.timeline} timeline entries shown", ne, r["full"][1], "")
    row("offer -> toast p50", statistics.median(te), statistics.median(tb), "ms")
    row("offer -> toast p99", pct(te, 99), pct(tb, 99), "ms")
    print(f"\nthe timeline's {args.timeline} entries paged in (30 a page) in "
          f"{r['scrolled']:.1f} s")


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bench.desk", description=__doc__.split("\n\n")[0])
    p.add_argument("--loads", type=int, default=5, help="measured loads per panel")
    p.add_argument("--offers", type=int, default=20, help="offers per panel")
    p.add_argument("--conversations", type=int, default=50, help="open conversations (<= 50)")
    p.add_argument("--messages", type=int, default=20, help="messages per conversation")
    p.add_argument("--timeline", type=int, default=1000, help="the customer's timeline entries")
    args = p.parse_args(argv)
    if not 1 <= args.conversations <= 50:
        p.error("--conversations: 1 to 50 (an agent's capacity per channel)")
    try:
        report(asyncio.run(run(args)), args)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
