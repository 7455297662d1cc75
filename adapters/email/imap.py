"""An existing mailbox read with IMAP IDLE (aioimaplib): new mail as it arrives.

Each unseen mail is handed in, then flagged \\Seen: a crash between the two means the
mail is read again next time, and the contract stores it once (same Message-ID).
Connection losses reconnect with a growing delay; IDLE is re-issued every
`idle_seconds` since servers drop idle connections (RFC 2177 asks for < 29 minutes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl

import aioimaplib

from adapters.email.intake import EmailIntake
from ctl.channels.contract import ChannelError
from ctl.channels.settings import ImapSettings

log = logging.getLogger(__name__)
_UID = re.compile(rb"UID (\d+)")


class ImapError(Exception):
    pass


class ImapWatcher:
    def __init__(self, intake: EmailIntake, settings: ImapSettings) -> None:
        self._intake = intake
        self._s = settings
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.taken = 0  # mails handed in since start (for health and tests)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        backoff = 0.5
        where = f"{self._s.username}@{self._s.host}:{self._s.port}/{self._s.mailbox}"
        while True:
            client = self._client()
            try:
                await self._session(client)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("email: IMAP %s: %s; reconnecting in %.1fs", where,
                            e or type(e).__name__, backoff)
            finally:
                self.connected.clear()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.logout(), 2)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    def _client(self) -> aioimaplib.IMAP4:
        if self._s.ssl:
            return aioimaplib.IMAP4_SSL(self._s.host, self._s.port,
                                        ssl_context=ssl.create_default_context())
        return aioimaplib.IMAP4(self._s.host, self._s.port)

    async def _session(self, client: aioimaplib.IMAP4) -> None:
        await client.wait_hello_from_server()
        _ok(await client.login(self._s.username, self._s.password), "login")
        _ok(await client.select(self._s.mailbox), f"select {self._s.mailbox}")
        self.connected.set()
        while True:
            await self._drain(client)
            idle = await client.idle_start(timeout=self._s.idle_seconds)
            with contextlib.suppress(TimeoutError):
                await client.wait_server_push(self._s.idle_seconds + 5)
            client.idle_done()
            await asyncio.wait_for(idle, 10)

    async def _drain(self, client: aioimaplib.IMAP4) -> None:
        """Hand in every unseen mail, oldest first."""
        found = await client.uid_search("UNSEEN")
        _ok(found, "search")
        uids = found.lines[0].split() if found.lines else []
        for uid in (u.decode() for u in uids if u.isdigit()):
            fetched = await client.uid("fetch", uid, "(BODY.PEEK[])")
            _ok(fetched, f"fetch {uid}")
            raw = next((bytes(line) for line in fetched.lines
                        if isinstance(line, bytearray)), None)
            if raw is None:
                continue  # expunged meanwhile
            try:
                await self._intake.take(raw, None, "imap")
            except ChannelError as e:  # refused for good: flag it so it is not retried
                log.warning("email: IMAP mail %s refused: %s", uid, e)
            _ok(await client.uid("store", uid, "+FLAGS.SILENT (\\Seen)"), f"store {uid}")
            self.taken += 1


def _ok(response: aioimaplib.Response, what: str) -> None:
    if response.result != "OK":
        detail = b" ".join(bytes(x) for x in response.lines[-1:]).decode("utf-8", "replace")
        raise ImapError(f"{what}: {response.result} {detail}")
