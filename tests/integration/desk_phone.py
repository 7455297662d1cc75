"""The browser softphone's side of a call: an agent logged in to the desk in Chromium with
its softphone registered, the page's WebRTC stats, the voice the agent speaks into the
fake microphone; the customer's handset is a MediaPhone with ears, calling in over SIP
(harness.Caller.dial_in).

Chromium's fake microphone without a file only beeps now and then, and a steady tone
fades under WebRTC's noise suppression within a second: the agent speaks instead
(espeak-ng, looped by Chromium), which is loud in most 20 ms frames.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page

from tests.integration import desk_browser, sip

# Every RTCPeerConnection the page makes, for its stats (the softphone keeps its own).
KEEP_CONNECTIONS = """(() => {
  const Native = window.RTCPeerConnection;
  window.peerConnections = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Native(...args);
    window.peerConnections.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
})();"""
AUDIO = """async () => {
  const totals = {received: 0, bytes: 0, sent: 0};
  const pc = window.peerConnections[window.peerConnections.length - 1];
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      totals.received += s.packetsReceived; totals.bytes += s.bytesReceived;
    }
    if (s.type === "outbound-rtp" && s.kind === "audio") totals.sent += s.packetsSent;
  });
  return totals;
}"""
SPEECH = "Hello, this is Wendy from Acme support. How can I help you today?"


async def agent_voice(folder: Path) -> Path:
    """A wav of the agent speaking, for --use-file-for-fake-audio-capture."""
    path = folder / "agent-voice.wav"
    proc = await asyncio.create_subprocess_exec("espeak-ng", "-w", str(path), SPEECH)
    assert await proc.wait() == 0, "espeak-ng failed (bootstrap.sh installs it)"
    return path


async def audio(page: Page) -> dict[str, Any]:
    totals: dict[str, Any] = await page.evaluate(AUDIO)
    return totals


async def desk_agent(browser: Browser, base: str, username: str, password: str
                     ) -> tuple[BrowserContext, Page, desk_browser.ConsoleErrors]:
    """The agent logged in to the desk, its softphone registered."""
    context = await browser.new_context()
    await context.add_init_script(KEEP_CONNECTIONS)
    page = await context.new_page()
    errors = desk_browser.ConsoleErrors(page)
    page.on("console", lambda m: print("console:", m.type, m.text[:300]))  # shown on failure
    await desk_browser.login(page, base, username, password)
    await page.wait_for_selector("[data-region=phone][data-registration=registered]")
    return context, page, errors


async def available(page: Page) -> None:
    await page.select_option("#agent-state", "available")
    await page.wait_for_selector("[data-region=topbar][data-state=available]")


async def browser_agent(env: dict[str, str], queue: str = "general") -> tuple[str, str]:
    username = f"w{uuid.uuid4().hex[:8]}"
    password = await sip.add_agent(env, username, "Wendy Web",
                                   str(5000000 + uuid.uuid4().int % 1000000))
    await sip.ctl_command(env, "agents", "set", username, "--queue", queue,
                          "--language", "en")
    return username, password


async def register(sip_port: int, username: str, password: str, port: int) -> None:
    """sipp registers the agent's desk phone at 127.0.0.1:port."""
    endpoint = f"agent-{username}"
    (await sip.run("uac_register.xml", "-key", "caller", endpoint, "-au", endpoint,
                   "-ap", password, f"127.0.0.1:{sip_port}", "-i", "127.0.0.1",
                   "-p", str(port))).check()
