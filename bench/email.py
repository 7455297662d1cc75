"""Email intake: mails per second parsed, stored and routed by ctl vs two baselines.

    .venv/bin/python -m bench.email                      # 2,000 mails, 8 SMTP connections
    .venv/bin/python -m bench.email --mails 300          # a quick check

The same mails (a fixed mix: UTF-8 and GBK, quoted-printable and base64 bodies, HTML
alternatives, PDF attachments, a third of them replies threaded by In-Reply-To) go:
1. through the stdlib `email` parser alone, in this process (parsing's floor);
2. over SMTP to a bare aiosmtpd server that discards them (the transport's floor);
3. over SMTP to `ctl serve`'s built-in server (SQLite, no Asterisk), which answers 250
   only once each mail is parsed, its customer identified, its message and
   attachments stored and its contact routed (a new thread enqueued; a reply joined).
Afterwards the database is checked: every mail stored once, one contact per thread.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import email
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from email.policy import default as default_policy
from pathlib import Path

from aiosmtpd.smtp import SMTP

from bench.chat import ctl_process
from tests.integration.harness import free_port

OURS = "support@bench.test"


# --- the mails --------------------------------------------------------------------------

def _word(text: str, charset: str) -> str:
    """An RFC 2047 encoded word, as mail clients write non-ASCII subjects."""
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode()}?="


def _qp(data: bytes) -> str:
    import quopri
    return quopri.encodestring(data).decode()


def _b64(data: bytes) -> str:
    text = base64.b64encode(data).decode()
    return "\r\n".join(text[i:i + 76] for i in range(0, len(text), 76))


def mails(n: int, seed: int = 6) -> list[tuple[str, bytes]]:
    """n mails (sender, raw bytes); about a third answer an earlier mail of their sender."""
    rng = random.Random(seed)
    pdf = b"%PDF-1.4\n" + rng.randbytes(24_000)
    out: list[tuple[str, bytes]] = []
    sent: dict[str, list[tuple[str, str]]] = {}  # sender -> [(message id, subject)]
    for i in range(n):
        sender = f"customer{rng.randrange(max(n // 4, 1))}@example.com"
        mid = f"<bench.{i}.{rng.getrandbits(32):x}@example.com>"
        head = [f"From: Customer {i} <{sender}>", f"To: <{OURS}>", f"Message-ID: {mid}",
                "Date: Mon, 07 Dec 2026 12:00:00 +0000", "MIME-Version: 1.0"]
        earlier = sent.get(sender)
        if earlier and rng.random() < 0.6:
            parent, subject = earlier[-1]
            head += [f"In-Reply-To: {parent}", f"References: {parent}"]
            subject = subject if subject.startswith("Re: ") else f"Re: {subject}"
        else:
            subject = rng.choice(["My order has not arrived", "订单没有收到", "Refund request",
                                  "发票问题", "Problème de livraison"])
        kind = i % 5
        body = _BODIES[kind](rng, subject)
        charset = "gbk" if kind == 1 else "utf-8"
        subject_header = subject if subject.isascii() else _word(subject, charset)
        raw = "\r\n".join([*head, f"Subject: {subject_header}", *body]) + "\r\n"
        if kind == 4:
            raw = raw.replace("@@PDF@@", _b64(pdf))
        sent.setdefault(sender, []).append((mid, subject))
        out.append((sender, raw.encode()))  # 8bit parts are UTF-8
    return out


def _plain_utf8(rng: random.Random, subject: str) -> list[str]:
    text = f"Hello,\n\n{subject}. 我的订单号是 {rng.randrange(10**6)}, 请帮忙查一下。\nThanks\n"
    return ["Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable", "",
            _qp(text.encode()).replace("\n", "\r\n")]


def _gbk(rng: random.Random, subject: str) -> list[str]:
    text = f"您好, \n\n{subject}。订单号 {rng.randrange(10**6)}, 已经等了一个星期。\n谢谢\n"
    return ["Content-Type: text/plain; charset=gbk", "Content-Transfer-Encoding: base64", "",
            _b64(text.encode("gbk"))]


def _alternative(rng: random.Random, subject: str) -> list[str]:
    text = f"Bonjour,\n\n{subject} : colis n° {rng.randrange(10**6)} toujours pas reçu.\n"
    html = f"<html><body><p>Bonjour,</p><p>{subject} : colis reçu ?</p></body></html>"
    return ['Content-Type: multipart/alternative; boundary="alt"', "", "--alt",
            "Content-Type: text/plain; charset=iso-8859-1",
            "Content-Transfer-Encoding: quoted-printable", "",
            _qp(text.encode("iso-8859-1", "replace")).replace("\n", "\r\n"), "--alt",
            "Content-Type: text/html; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable", "",
            _qp(html.encode()), "--alt--"]


def _gb18030_short(rng: random.Random, subject: str) -> list[str]:
    text = f"{subject}? 请回电话 138{rng.randrange(10**8):08d}"
    return ["Content-Type: text/plain; charset=gb18030", "Content-Transfer-Encoding: base64",
            "", _b64(text.encode("gb18030"))]


def _attachment(rng: random.Random, subject: str) -> list[str]:
    return ['Content-Type: multipart/mixed; boundary="mix"', "", "--mix",
            "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit", "",
            f"{subject}: the invoice is attached (#{rng.randrange(10**6)}).", "--mix",
            'Content-Type: application/pdf; name="invoice.pdf"',
            'Content-Disposition: attachment; filename="invoice.pdf"',
            "Content-Transfer-Encoding: base64", "", "@@PDF@@", "--mix--"]


_BODIES = [_plain_utf8, _gbk, _alternative, _gb18030_short, _attachment]


# --- the baselines ------------------------------------------------------------------------

def parse_only(batch: list[tuple[str, bytes]]) -> float:
    """Mails per second through the stdlib parser: every part's content decoded."""
    start = time.perf_counter()
    for _, raw in batch:
        msg = email.message_from_bytes(raw, policy=default_policy)
        for part in msg.walk():
            if not part.is_multipart():
                part.get_content()
        str(msg["subject"])
    return len(batch) / (time.perf_counter() - start)


class _Discard:
    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "250 OK"


def serve_bare(port: int) -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(lambda: SMTP(_Discard(), enable_SMTPUTF8=True,
                                              decode_data=False, ident="bare"),
                                 "127.0.0.1", port)
        await asyncio.Event().wait()
    asyncio.run(run())


# --- the client ----------------------------------------------------------------------------

class SmtpClient:
    """A minimal SMTP client: one connection, mails one after another."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> SmtpClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        await client._reply()
        await client._command("EHLO bench.test")
        return client

    async def _reply(self) -> str:
        while True:
            line = (await self.reader.readline()).decode()
            if not line:
                raise ConnectionError("the server closed the connection")
            if line[3:4] != "-":
                return line.strip()

    async def _command(self, line: str) -> str:
        self.writer.write(line.encode() + b"\r\n")
        reply = await self._reply()
        if not reply.startswith(("2", "3")):
            raise RuntimeError(f"{line!r}: {reply}")
        return reply

    async def send(self, sender: str, raw: bytes) -> str:
        await self._command(f"MAIL FROM:<{sender}>")
        await self._command(f"RCPT TO:<{OURS}>")
        await self._command("DATA")
        stuffed = b"\r\n".join(b"." + ln if ln.startswith(b".") else ln
                               for ln in raw.split(b"\r\n"))
        self.writer.write(stuffed + b"\r\n.\r\n")
        reply = await self._reply()
        if not reply.startswith("250"):
            raise RuntimeError(f"DATA: {reply}")
        return reply

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._command("QUIT")
        self.writer.close()


async def deliver(port: int, batch: list[tuple[str, bytes]], connections: int
                  ) -> tuple[float, list[float]]:
    """All mails over `connections` connections; (mails/s, each mail's DATA->250 s).
    A sender's mails go over one connection in their order, so a reply never
    overtakes the mail it answers."""
    lanes: list[list[tuple[str, bytes]]] = [[] for _ in range(connections)]
    for sender, raw in batch:
        lanes[hash(sender) % connections].append((sender, raw))
    clients = [await SmtpClient.connect(port) for _ in range(connections)]
    times: list[float] = []

    async def lane(client: SmtpClient, mine: list[tuple[str, bytes]]) -> None:
        for sender, raw in mine:
            t0 = time.perf_counter()
            await client.send(sender, raw)
            times.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(lane(c, m) for c, m in zip(clients, lanes, strict=True)))
    wall = time.perf_counter() - start
    for c in clients:
        await c.close()
    return len(batch) / wall, times


async def _up(port: int) -> None:
    for _ in range(200):
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


# --- the run ---------------------------------------------------------------------------------

def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s)) - 1))] * 1000 if s else 0.0


def _check(db: Path, batch: list[tuple[str, bytes]]) -> tuple[int, int, int]:
    """(mails stored, contacts, attachments) as the database has them."""
    with contextlib.closing(sqlite3.connect(db)) as c:
        stored = c.execute("SELECT count(*) FROM messages WHERE channel='email' "
                           "AND direction='in'").fetchone()[0]
        contacts = c.execute("SELECT count(*) FROM contacts WHERE channel='email'").fetchone()[0]
        files = c.execute("SELECT count(*) FROM messages WHERE channel='email' "
                          "AND attachments != '[]'").fetchone()[0]
    return stored, contacts, files


def _threads(batch: list[tuple[str, bytes]]) -> int:
    return sum(1 for _, raw in batch if b"In-Reply-To:" not in raw)


async def main(args: argparse.Namespace) -> int:
    batch = mails(args.mails)
    size = sum(len(raw) for _, raw in batch) / len(batch) / 1024
    parse_rate = parse_only(batch)
    port = free_port()
    bare = subprocess.Popen([sys.executable, "-m", "bench.email", "--serve-bare", str(port)])
    try:
        await _up(port)
        bare_rate, bare_times = await deliver(port, batch, args.connections)
    finally:
        bare.terminate()
        bare.wait(10)
    data_dir = Path(tempfile.mkdtemp(prefix="ctl-bench-email-"))
    smtp_port = free_port()
    env = {"CTL_CHANNELS": json.dumps({
        "rate_per_minute": 1e6, "rate_burst": 100000,
        "email": {"address": OURS, "smtp_port": smtp_port}})}
    try:
        async with ctl_process(data_dir, env) as (_, _, _):
            await _up(smtp_port)
            ctl_rate, ctl_times = await deliver(smtp_port, batch, args.connections)
            stored, contacts, files = _check(data_dir / "ctl.db", batch)
    finally:
        if args.keep:
            print(f"bench.email: kept {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(f"{len(batch)} mails (avg {size:.1f} KiB; {_threads(batch)} threads, "
          f"{sum(1 for _, r in batch if b'invoice.pdf' in r)} with a PDF), "
          f"{args.connections} SMTP connections, {os.cpu_count()} CPUs\n")
    print(f"{'target':<34}{'mails/s':>9}{'DATA->250 p50':>15}{'p99 ms':>9}")
    print(f"{'stdlib email parser alone':<34}{parse_rate:>9.0f}")
    for name, rate, times in (("SMTP to a bare aiosmtpd (discard)", bare_rate, bare_times),
                              ("SMTP to ctl (parse+store+route)", ctl_rate, ctl_times)):
        print(f"{name:<34}{rate:>9.0f}{_pct(times, 50):>15.1f}{_pct(times, 99):>9.1f}")
    print(f"\nctl/bare SMTP: {ctl_rate / bare_rate:.2f}x   ctl/parser alone: "
          f"{ctl_rate / parse_rate:.2f}x")
    print(f"stored {stored} of {len(batch)} mails, {contacts} contacts for "
          f"{_threads(batch)} threads, {files} with attachments")
    ok = stored == len(batch) and contacts == _threads(batch)
    return 0 if ok else 1


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.email", description=__doc__.split("\n")[0])
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep ctl's data directory")
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return 0
    return asyncio.run(main(args))


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
