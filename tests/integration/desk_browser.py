"""The agent desktop in a real browser: Debian's Chromium driven by Playwright, a fake
microphone and camera (the softphone's getUserMedia gets a test tone, no prompt), the
login, a collector of console errors every test asserts empty, and screenshots kept.

Screenshots go to $CTL_TEST_ARTIFACTS, else <repo>/test-artifacts (gitignored).
Give `page.wait_for_function` an arrow function ("() => ..."), not a bare expression:
Playwright evals an expression again at each poll, which the desk's Content-Security-
Policy refuses (no eval), and a function only once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from playwright.async_api import Browser, ConsoleMessage, Error, Page, async_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps trying to reach Google's
# hosts, which this closed network refuses.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
HAVE_CHROMIUM = Path(CHROMIUM).exists()
ARTIFACTS = Path(os.environ.get("CTL_TEST_ARTIFACTS")
                 or Path(__file__).resolve().parents[2] / "test-artifacts")


@contextlib.asynccontextmanager
async def chromium(microphone: Path | None = None, trust_spki: str | None = None
                   ) -> AsyncIterator[Browser]:
    """Chromium; its fake microphone plays `microphone` (a wav, looped) when given; it
    trusts the certificate whose public key hashes to `trust_spki` (base64 SHA-256).
    A context's ignore_https_errors instead lets each request past the error one at a
    time, and Chromium gave up on a stylesheet with ERR_TOO_MANY_RETRIES (CI, stop 14)."""
    if not HAVE_CHROMIUM:
        raise AssertionError("chromium is not installed: apt-get install chromium "
                             "(bootstrap.sh installs it)")
    async with async_playwright() as pw:
        args = ARGS + ([f"--use-file-for-fake-audio-capture={microphone}"] if microphone
                       else [])
        if trust_spki:
            args.append(f"--ignore-certificate-errors-spki-list={trust_spki}")
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield browser
        finally:
            await browser.close()


class ConsoleErrors(list[str]):
    """Console errors and uncaught exceptions of one page. Expected ones (a 401 the test
    provoked...) are dropped with `allow(pattern)` before asserting the list empty."""

    def __init__(self, page: Page) -> None:
        super().__init__()
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.append(f"uncaught: {e}"))

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self.append(f"{msg.text} ({msg.location.get('url', '')})")

    def allow(self, pattern: str) -> None:
        self[:] = [e for e in self if not re.search(pattern, e)]


async def login(page: Page, base: str, username: str, password: str,
                lang: str | None = None) -> None:
    """Log in through the login form and wait until every module of the panel mounted
    and its websocket said hello."""
    await page.goto(f"{base}/desk/login" + (f"?lang={lang}" if lang else ""))
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("form.login-form button[type=submit]")
    await page.wait_for_url(f"{base}/desk/")
    await ready(page)


async def ready(page: Page) -> None:
    await page.wait_for_selector("body[data-ready=true]")
    await page.wait_for_function("() => window.desk && window.desk.socket "
                                 "&& window.desk.socket.readyState === 1")


async def screenshot(page: Page, name: str) -> Path:
    await asyncio.to_thread(ARTIFACTS.mkdir, parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    with contextlib.suppress(Error):  # a screenshot is evidence, never the failure itself
        await page.screenshot(path=str(path), full_page=True)
    return path


async def unlabelled(page: Page) -> list[str]:
    """Controls without an accessible name (what a screen reader would announce blank)."""
    found: list[str] = await page.evaluate("""() => {
        const named = (el) => {
          if ((el.getAttribute('aria-label') || '').trim()) return true;
          const by = el.getAttribute('aria-labelledby');
          if (by && by.split(/\\s+/).some(id => (document.getElementById(id)?.textContent
                                                 || '').trim())) return true;
          if (el.labels && [...el.labels].some(l => l.textContent.trim())) return true;
          if ((el.getAttribute('title') || '').trim()) return true;
          if (['BUTTON', 'A', 'SUMMARY'].includes(el.tagName) && el.textContent.trim())
            return true;
          if (el.tagName === 'INPUT' && ['submit', 'button'].includes(el.type) && el.value)
            return true;
          return false;
        };
        const sel = 'button, a[href], input:not([type=hidden]), select, textarea, '
                  + '[role=button], [role=tab], [role=checkbox], [role=switch], summary';
        return [...document.querySelectorAll(sel)]
          .filter(el => el.offsetParent !== null || el.getClientRects().length)
          .filter(el => !named(el))
          .map(el => el.outerHTML.slice(0, 120));
    }""")
    return found
