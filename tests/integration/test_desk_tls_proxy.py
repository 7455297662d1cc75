"""README's nginx site in front of the real Asterisk and ctl, with a throwaway
certificate: SIP over wss reaches Asterisk through it (a SIP request over the websocket
gets Asterisk's answer), and an agent logs in to the desk over https through it, its
push websocket connects, and the session cookie is Secure."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import shutil
import ssl
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NamedTuple

import aiohttp
import pytest
from playwright.async_api import Browser

from ctl.asterisk.process import AsteriskProcess
from tests.integration import desk_browser
from tests.integration.harness import CtlProcess, eventually, free_port
from tests.integration.test_desk_phone import browser_agent

README = Path(__file__).resolve().parents[2] / "README.md"


class Proxy(NamedTuple):
    port: int
    spki: str  # the certificate's public key pin, which the browser is told to trust


def site(asterisk_port: int, ctl_port: int, port: int, certs: Path) -> str:
    """README's nginx site, on this test's ports and certificate."""
    text = README.read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```nginx\n(.*?)```", text, re.S) if "map " in b)
    block = "\n".join(line for line in block.splitlines() if "listen 80" not in line)
    return (block.replace("listen 443 ssl", f"listen 127.0.0.1:{port} ssl")
            .replace("/etc/ssl/desk.example.com/", f"{certs}/")
            .replace("127.0.0.1:8088", f"127.0.0.1:{asterisk_port}")
            .replace("127.0.0.1:8080", f"127.0.0.1:{ctl_port}"))


def configure(asterisk_port: int, ctl_port: int, port: int, root: Path) -> Path:
    """A throwaway certificate and nginx.conf holding README's site; its path."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(root / "privkey.pem"), "-out", str(root / "fullchain.pem")],
                   check=True, capture_output=True)
    key = subprocess.run(["openssl", "x509", "-in", str(root / "fullchain.pem"), "-noout",
                          "-pubkey"], check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=key,
                         check=True, capture_output=True).stdout
    (root / "spki").write_text(base64.b64encode(hashlib.sha256(der).digest()).decode())
    temp = " ".join(f"{kind}_temp_path {root}/{kind};" for kind in
                    ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = root / "nginx.conf"
    conf.write_text(f"daemon off; pid {root}/nginx.pid; error_log {root}/error.log; "
                    f"user root;\nevents {{}}\nhttp {{ access_log off; {temp}\n"
                    f"{site(asterisk_port, ctl_port, port, root)}\n}}\n")
    return conf


@pytest.fixture(scope="module")
async def proxy(asterisk: AsteriskProcess, ctl: CtlProcess,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Proxy]:
    nginx = shutil.which("nginx") or shutil.which("/usr/sbin/nginx")
    assert nginx, "nginx is not installed: apt-get install nginx (bootstrap.sh does)"
    root = tmp_path_factory.mktemp("nginx")
    port = free_port()
    conf = await asyncio.to_thread(configure, asterisk.cfg.http_port, ctl.port, port, root)
    proc = subprocess.Popen([nginx, "-p", str(root), "-c", str(conf)],
                            stderr=subprocess.PIPE)

    async def listening() -> bool:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        return True

    await eventually(listening, 10, "nginx to listen")
    yield Proxy(port, (root / "spki").read_text())
    proc.terminate()
    proc.wait()


async def test_sip_over_wss_reaches_asterisk_through_the_proxy(proxy: Proxy) -> None:
    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
    call_id = uuid.uuid4().hex
    options = (f"OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
               f"Via: SIP/2.0/WSS test.invalid;branch=z9hG4bK{call_id[:10]}\r\n"
               f"Max-Forwards: 70\r\nTo: <sip:127.0.0.1>\r\n"
               f"From: <sip:probe@test.invalid>;tag={call_id[:8]}\r\n"
               f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    async with aiohttp.ClientSession() as http, http.ws_connect(
            f"wss://127.0.0.1:{proxy.port}/ws", protocols=("sip",), ssl=insecure) as ws:
        assert ws.protocol == "sip"
        await ws.send_str(options)
        answer = await ws.receive(timeout=10)
    assert str(answer.data).startswith("SIP/2.0 ") and call_id in str(answer.data), answer


async def test_the_desk_works_over_https_through_the_proxy(
        proxy: Proxy, ast_env: dict[str, str], backend: dict[str, str]) -> None:
    env = {**os.environ, **ast_env, **backend}
    username, password = await browser_agent(env)
    base = f"https://127.0.0.1:{proxy.port}"
    async with desk_browser.chromium(trust_spki=proxy.spki) as browser:
        await desk_over_https(browser, base, username, password)


async def desk_over_https(browser: Browser, base: str, username: str, password: str) -> None:
    context = await browser.new_context()
    # The softphone off: this controller's SIP websocket is the direct ws:// one, which an
    # https page may not open (the wss path is the test above).
    await context.add_init_script("localStorage.setItem('ctl.softphone.off', '1')")
    page = await context.new_page()
    errors = desk_browser.ConsoleErrors(page)
    await desk_browser.login(page, base, username, password)  # Origin matches Host
    cookie = next(c for c in await context.cookies() if c["name"] == "ctl_session")
    assert cookie["secure"] and cookie["httpOnly"]  # X-Forwarded-Proto: https
    await page.select_option("#agent-state", "available")  # the push socket answers
    await page.wait_for_selector("[data-region=topbar][data-state=available]")
    await page.select_option("#agent-state", "offline")
    await page.wait_for_selector("[data-region=topbar][data-state=offline]")
    assert errors == [], errors
    await context.close()
