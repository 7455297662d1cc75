"""`ctl doctor`: check every dependency, say what is wrong and how to fix it."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from dataclasses import dataclass

from ctl.asterisk import provision
from ctl.asterisk.process import check_ports
from ctl.errors import CtlError
from ctl.settings import Settings


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def run(settings: Settings, asterisk_running: bool) -> list[Check]:
    checks = [
        Check("python", sys.version_info >= (3, 11), sys.version.split()[0],
              "install Python 3.11 or newer"),
        _data_dir(settings),
        _asterisk(settings),
    ]
    if not asterisk_running:
        checks.append(_ports(settings))
    checks.append(asyncio.run(_database(settings)))
    if settings.redis_url:
        checks.append(asyncio.run(_redis(settings.redis_url)))
    return checks


def _data_dir(settings: Settings) -> Check:
    d = settings.data_dir.resolve()
    probe = d if d.exists() else d.parent
    ok = os.access(probe, os.W_OK)
    return Check("data_dir", ok, str(d), f"make {probe} writable or set CTL_DATA_DIR")


def _asterisk(settings: Settings) -> Check:
    try:
        inst = provision.locate(settings.asterisk)
    except CtlError as e:
        return Check("asterisk", False, str(e), e.hint or "")
    if inst is not None:
        where = f"root {inst.root}" if inst.root else inst.binary
        return Check("asterisk", True, where)
    if shutil.which("debootstrap") and os.geteuid() == 0:
        return Check("asterisk", True, "not built yet; `ctl asterisk up` builds it (~1 min)")
    fix = ("apt-get install debootstrap" if os.geteuid() == 0
           else "run `sudo ctl asterisk up` once, or install asterisk")
    return Check("asterisk", False, "no asterisk and no way to build one", fix)


def _ports(settings: Settings) -> Check:
    try:
        check_ports(settings.asterisk)
    except CtlError as e:
        return Check("ports", False, str(e), e.hint or "")
    a = settings.asterisk
    return Check("ports", True, f"sip {a.sip_port}/udp, http {a.http_port}, ami {a.ami_port} free")


async def _database(settings: Settings) -> Check:
    from ctl.store.db import Database

    db = Database(settings.db_url)
    try:
        await asyncio.wait_for(db.ping(), 5)
    except Exception as e:
        return Check("database", False, f"{_safe(settings.db_url)}: {e}",
                     "start PostgreSQL or fix CTL_DATABASE_URL")
    finally:
        await db.close()
    return Check("database", True, _safe(settings.db_url))


async def _redis(url: str) -> Check:
    from ctl.store.live import make_live

    live = make_live(url)
    try:
        await asyncio.wait_for(live.ping(), 5)
    except Exception as e:
        return Check("redis", False, f"{_safe(url)}: {e}", "start Redis or fix CTL_REDIS_URL")
    finally:
        await live.close()
    return Check("redis", True, _safe(url))


def _safe(url: str) -> str:
    """A URL without its password."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':')[0]}:***@{host}" if ":" in creds else url
