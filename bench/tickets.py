"""Tickets at scale on PostgreSQL (issue #7): creation throughput, rule evaluation
throughput and search latency with 1,000,000 tickets, each against a baseline measured in
the same run.

    .venv/bin/python -m bench.tickets [--tickets 1000000] [--creates 2000] [--concurrency 8]
                                      [--evaluate 100000] [--searches 100] [--keep]

A throwaway database on CTL_BENCH_PG (default postgresql://postgres@127.0.0.1:5432/postgres)
is migrated and filled server-side with 100,000 customers and `--tickets` tickets (most
closed, as in a contact center's history), then:

- creation: TicketService.create (number from the counter row, the row, its `created`
  event, SLA due times over business hours) against a bare one-row INSERT per
  transaction (no number counter, no event, no SLA), same concurrency;
- rules: the compiled rules of a 20-rule file matched against tickets read from the
  database, against an interpreter that walks the rules' YAML conditions for every ticket
  (both must fire the same rules);
- search: TicketService.search for the API's filters (p50/p99), against the same SQL
  with PostgreSQL's index scans turned off (the unindexed query).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url

from ctl.store.db import Database, migrate
from ctl.store.models import Base, Ticket, new_id, utcnow
from ctl.tickets import model, rules
from ctl.tickets.search import Filters, statement
from ctl.tickets.service import TicketService

PG_ADMIN = os.environ.get("CTL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
CUSTOMERS = 100_000
SUBJECTS = ["Router keeps rebooting", "Invoice is wrong", "Cannot log in", "Slow internet",
            "Refund request", "Line down", "Password reset", "Billing address change"]
_TICKETS = Base.metadata.tables["tickets"]
_FILL = """
INSERT INTO customers (id, display_name, tier, created_at)
SELECT md5('c' || g), 'Customer ' || g, CASE WHEN g % 20 = 0 THEN 'vip' ELSE 'standard' END,
       now() FROM generate_series(1, {customers}) g;
INSERT INTO tickets (id, number, subject, description, status, priority, category, department,
    customer_id, channel, source, tags, fields, attachments, notify, created_at, updated_at,
    sla_state, version)
SELECT md5('t' || g), g, (ARRAY{subjects})[1 + g % 8] || ' ' || g,
    'Customer reports: ' || md5(g::text),
    (ARRAY['closed','closed','closed','closed','closed','closed','closed','resolved','open',
           'pending_customer','pending_department','new','reopened'])[1 + g % 13],
    (ARRAY['low','normal','normal','normal','high','urgent'])[1 + g % 6],
    (ARRAY['hardware','billing','account','network'])[1 + g % 4],
    (ARRAY['service','tech','billing','sales','retention'])[1 + (g / 7) % 5],
    md5('c' || (1 + g % {customers})), (ARRAY['email','voice','chat','sms','wechat'])[1 + g % 5],
    'api', '[]'::json, '{{}}'::json, '[]'::json, true,
    now() - (({tickets} - g) || ' seconds')::interval,
    now() - (({tickets} - g) || ' seconds')::interval,
    (ARRAY['ok','ok','warning','breached','none'])[1 + g % 5], 1
FROM generate_series(1, {tickets}) g;
UPDATE ticket_counter SET last = {tickets};
"""


def customer(g: int) -> str:
    return hashlib.md5(f"c{g}".encode()).hexdigest()  # as _FILL names them


def rules_file(path: Path) -> Path:
    """20 rules over every kind of condition; the sort of file an admin writes."""
    out: list[dict[str, Any]] = []
    for i in range(20):
        cond: dict[str, Any] = {"priority": [["low", "normal"], ["high", "urgent"]][i % 2]}
        if i % 3 == 0:
            cond["text"] = SUBJECTS[i % 8].split()[-1].lower()
        if i % 4 == 1:
            cond["department"] = ["service", "tech", "billing"][i % 3]
        if i % 5 == 2:
            cond["channel"] = ["email", "chat"]
        if i % 7 == 3:
            cond["status"] = ["open", "reopened"]
        out.append({"name": f"rule {i}", "when": ["update"], "if": cond,
                    "then": {"add_tags": [f"r{i}"]}})
    path.write_text(yaml.safe_dump({"rules": out, "sla": {
        "urgent": {"first_response": "30m", "resolution": "4h"},
        "normal": {"first_response": "4h", "resolution": "24h"}},
        "business_hours": {"mon-fri": "09:00-18:00"}, "timezone": "Asia/Shanghai"}))
    return path


def interpret(raw: list[dict[str, Any]], t: model.TicketView) -> list[str]:
    """The baseline: read each rule's YAML condition afresh for every ticket."""
    fired = []
    for r in raw:
        ok = True
        for key, want in (r.get("if") or {}).items():
            if key == "text":
                needle = str(want).casefold()
                ok = needle in t.subject.casefold() or needle in t.description.casefold()
            elif key == "tag":
                ok = want in t.tags
            elif key == "fields":
                ok = all(t.fields.get(k) == v for k, v in want.items())
            else:
                ok = getattr(t, key) in (want if isinstance(want, list) else [want])
            if not ok:
                break
        if ok and "update" in r["when"]:
            fired.append(str(r["name"]))
    return fired


async def timed(n: int, concurrency: int, op: Callable[[int], Awaitable[Any]]) -> float:
    """Operations per second for `n` calls of `op`, `concurrency` at a time."""
    queue = iter(range(n))

    async def worker() -> None:
        for i in queue:
            await op(i)

    start = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(concurrency)])
    return n / (time.perf_counter() - start)


async def creation(db: Database, svc: TicketService, args: argparse.Namespace) -> list[str]:
    rnd = random.Random(1)

    async def ours(i: int) -> None:
        await svc.create(subject=f"{rnd.choice(SUBJECTS)} new {i}", channel="email",
                         priority=rnd.choice(["normal", "urgent", "low"]),
                         customer_id=customer(rnd.randrange(1, CUSTOMERS + 1)),
                         tags=["bench"], description="created by bench.tickets")

    async def bare(i: int) -> None:
        now = utcnow()
        row = {"id": new_id(), "number": 10_000_000 + i, "subject": f"bare {i}",
               "description": "", "status": "new", "priority": "normal", "source": "api",
               "tags": [], "fields": {}, "attachments": [], "notify": True, "created_at": now,
               "updated_at": now, "sla_state": "none", "version": 1}
        async with db.session() as s, s.begin():
            await s.execute(insert(_TICKETS), row)

    await timed(50, args.concurrency, ours)  # warm the pool and the caches
    base = await timed(args.creates, args.concurrency, bare)
    mine = await timed(args.creates, args.concurrency, ours)
    return [f"creation   TicketService.create {mine:9.0f}/s   bare INSERT {base:9.0f}/s   "
            f"ratio {mine / base:.2f}x (ours/baseline)"]


async def evaluation(db: Database, cfg: rules.TicketsConfig, raw: list[dict[str, Any]],
                     args: argparse.Namespace) -> list[str]:
    async with db.session(readonly=True) as s:
        found = await s.scalars(select(Ticket).order_by(Ticket.number.desc())
                                .limit(args.evaluate))
        tickets = [model.view(t) for t in found]
    for t in tickets[:1000]:
        assert [r.name for r in cfg.rules.matching("update", t)] == interpret(raw, t), t
    start = time.perf_counter()
    fired = sum(len(cfg.rules.matching("update", t)) for t in tickets)
    mine = len(tickets) / (time.perf_counter() - start)
    start = time.perf_counter()
    fired_b = sum(len(interpret(raw, t)) for t in tickets)
    base = len(tickets) / (time.perf_counter() - start)
    assert fired == fired_b
    return [f"rules      compiled {mine:13.0f} tickets/s   interpreted {base:9.0f}/s   "
            f"ratio {mine / base:.2f}x   ({len(raw)} rules; {fired / len(tickets):.2f} fire "
            "per ticket)"]


def searches() -> list[tuple[str, Callable[[random.Random], Filters]]]:
    return [
        ("open in tech", lambda r: Filters(status=["open"], department="tech")),
        ("a customer's", lambda r: Filters(customer_id=customer(r.randrange(1, CUSTOMERS)))),
        ("breached, unresolved", lambda r: Filters(sla_state="breached",
                                                   status=["open", "reopened", "new"])),
        ("new, by page", lambda r: Filters(status=["new"], before=r.randrange(10**5, 10**6))),
        ("text in billing", lambda r: Filters(text="refund", department="billing",
                                              status=["open"])),
    ]


async def search(db: Database, svc: TicketService, args: argparse.Namespace) -> list[str]:
    lines = []
    rnd = random.Random(2)
    for name, make in searches():
        ours = []
        for _ in range(args.searches):
            f = make(rnd)
            start = time.perf_counter()
            await svc.search(f)
            ours.append(time.perf_counter() - start)
        base = []
        for n in range(max(5, args.searches // 10)):
            stmt = statement(make(rnd))
            async with db.session(readonly=True) as s, s.begin():
                for knob in ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan"):
                    await s.execute(text(f"SET LOCAL {knob} = off"))
                # asyncpg prepares each statement once per connection and PostgreSQL may
                # keep a generic plan for it, made when indexes were allowed: replan.
                await s.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
                if n == 0:  # the baseline must really be unindexed
                    plan = "\n".join((await s.execute(
                        text("EXPLAIN " + str(stmt.compile(
                            db.engine, compile_kwargs={"literal_binds": True}))))).scalars())
                    assert "Seq Scan" in plan and "Index" not in plan, plan
                start = time.perf_counter()
                list(await s.scalars(stmt))
                base.append(time.perf_counter() - start)
        p50, p99, b50, b99 = _pct(ours, 50), _pct(ours, 99), _pct(base, 50), _pct(base, 99)
        lines.append(f"search     {name:22} p50 {p50 * 1e3:6.1f} ms  p99 {p99 * 1e3:6.1f} ms   "
                     f"unindexed p50 {b50 * 1e3:6.1f} ms  p99 {b99 * 1e3:6.1f} ms   "
                     f"p99 ratio {b99 / p99:5.1f}x")
    return lines


def _pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def fill(url: str, tickets: int) -> float:
    start = time.perf_counter()
    conn = await asyncpg.connect(url)
    try:
        subjects = "[" + ",".join(f"'{x}'" for x in SUBJECTS) + "]"
        await conn.execute(_FILL.format(customers=CUSTOMERS, tickets=tickets,
                                        subjects=subjects))
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - start


async def run(args: argparse.Namespace) -> int:
    name = f"ctl_bench_tickets_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_ADMIN).set(drivername="postgresql+asyncpg", database=name)
    rendered = url.render_as_string(hide_password=False)
    db = Database(rendered)
    try:
        await asyncio.to_thread(migrate, rendered)
        took = await fill(url.set(drivername="postgresql").render_as_string(
            hide_password=False), args.tickets)
        print(f"filled {args.tickets:,} tickets and {CUSTOMERS:,} customers in {took:.0f} s "
              f"(database {name})", flush=True)
        path = rules_file(Path(os.environ.get("TMPDIR", "/tmp")) / f"{name}.yaml")
        raw = yaml.safe_load(path.read_text())["rules"]
        cfg = rules.load(path, ["service", "tech", "billing"])
        svc = TicketService(db, config=cfg)
        lines = await creation(db, svc, args)
        print(lines[-1], flush=True)
        lines += await evaluation(db, cfg, raw, args)
        print(lines[-1], flush=True)
        for line in await search(db, svc, args):
            print(line, flush=True)
    finally:
        await db.close()
        if args.keep:
            print(f"kept database {name}")
        else:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.tickets", description=__doc__.split(
        "\n\n")[0])
    ap.add_argument("--tickets", type=int, default=1_000_000, help="tickets in the database")
    ap.add_argument("--creates", type=int, default=2000, help="tickets created per side")
    ap.add_argument("--concurrency", type=int, default=8, help="creations at once")
    ap.add_argument("--evaluate", type=int, default=100_000, help="tickets the rules see")
    ap.add_argument("--searches", type=int, default=100, help="searches per filter")
    ap.add_argument("--keep", action="store_true", help="keep the database")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return asyncio.run(run(parse_args(argv)))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
