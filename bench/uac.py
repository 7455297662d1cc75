"""A small SIP UAC on asyncio: places calls, times INVITE->200 OK and 200 OK->first RTP,
and for menus the key (an RFC 4733 telephone-event) -> the next prompt's first RTP.

sipp cannot time the first RTP packet after the answer, so the benchmark calls with this
UAC: one UDP SIP socket for every call (one process, so it does not compete with Asterisk
for the 2 cores more than it must), one RTP socket per call. Like a phone, each call
streams 20 ms of PCMU silence from the 200 OK on: dialplan Answer() waits up to 500 ms for
the caller's first voice frame, so a mute caller would handicap the baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import time
import uuid
from dataclasses import dataclass, field

# Compact header forms (RFC 3261 7.3.3) a server may use.
_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
            "l": "content-length"}
_RTP_FRAME = 160  # 20 ms of 8 kHz PCMU
_SILENCE = b"\xff" * _RTP_FRAME
_EVENT_PT = 101  # telephone-event, as offered in our SDP
_KEY_FRAMES = 5  # a key held 100 ms: above Asterisk's 80 ms minimum DTMF duration
_KEY_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}


@dataclass
class CallResult:
    """One call's timestamps (time.perf_counter seconds) and why it failed, if it did."""

    number: str
    invite_at: float = 0.0
    ok_at: float | None = None
    rtp_at: float | None = None
    bye_at: float | None = None
    key_at: float | None = None  # the key's first end-of-event packet went out
    reply_at: float | None = None  # the first RTP packet after the key
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def setup_ms(self) -> float | None:
        return None if self.ok_at is None else (self.ok_at - self.invite_at) * 1000

    @property
    def media_ms(self) -> float | None:
        if self.ok_at is None or self.rtp_at is None:
            return None
        # The first packet may beat the 200 OK through our loop; that is "no delay".
        return max(0.0, (self.rtp_at - self.ok_at) * 1000)

    @property
    def key_ms(self) -> float | None:
        if self.key_at is None or self.reply_at is None:
            return None
        return (self.reply_at - self.key_at) * 1000

    @property
    def held_ms(self) -> float | None:
        return None if self.ok_at is None or self.bye_at is None else (
            (self.bye_at - self.ok_at) * 1000)


class CallFailed(Exception):
    """The far end did not do what the call's script waits for."""


@dataclass
class Message:
    first: str
    headers: list[tuple[str, str]]
    body: str

    def get(self, name: str) -> str:
        return next((v for k, v in self.headers if k == name), "")

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]

    @property
    def status(self) -> int | None:
        parts = self.first.split(" ", 2)
        return int(parts[1]) if parts[0] == "SIP/2.0" and len(parts) > 1 else None


def parse(data: bytes) -> Message:
    text = data.decode("utf-8", "replace")
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers.append((_COMPACT.get(key, key), value.strip()))
    return Message(lines[0], headers, body)


def sdp_media(body: str) -> tuple[str, int] | None:
    """The (address, port) an SDP body sends its audio to."""
    host, port = None, None
    for line in body.splitlines():
        if line.startswith("c=IN IP4 "):
            host = line.split()[-1]
        elif line.startswith("m=audio "):
            port = int(line.split()[1])
    return (host, port) if host and port else None


@dataclass
class _Call:
    call_id: str
    result: CallResult
    rtp: socket.socket
    tag: str
    branch: str
    invite: bytes
    final: asyncio.Future[Message]
    bye: asyncio.Future[None]
    provisional: asyncio.Event = field(default_factory=asyncio.Event)
    ack: bytes | None = None
    media_to: tuple[str, int] | None = None
    seq: int = 0
    ssrc: int = field(default_factory=lambda: int.from_bytes(os.urandom(4), "big"))
    keys: str = ""  # pressed, one after each prompt, once the prompt has gone quiet
    last_rtp: float = 0.0
    keying: bool = False  # a key's events replace the voice frames while it is held


class Uac(asyncio.DatagramProtocol):
    """Places calls to `server` from one local SIP socket; calls are keyed by Call-ID."""

    def __init__(self, server: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.server, self.host = server, host
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.calls: dict[str, _Call] = {}
        self._ticker: asyncio.Task[None] | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self,
                                                           local_addr=(self.host, 0))
        self.transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        self._ticker = asyncio.create_task(self._stream_rtp())

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self.transport is not None:
            self.transport.close()

    def _send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data, self.server)

    async def call(self, target: str, number: str, timeout: float = 30.0,
                   key: str = "") -> CallResult:
        """Dial `target` as caller `number`; wait for the far end's BYE. Never raises.

        With `key`: once the first prompt has played and gone quiet, press it and time the
        next prompt's first packet (a menu)."""
        call = self._new_call(target, number)
        call.keys = key
        try:
            await asyncio.wait_for(self._dial(call), timeout)
        except TimeoutError:
            call.result.error = call.result.error or _stage(call.result)
        except Exception as e:  # a failed call is a figure, not a crash of the whole run
            call.result.error = f"{type(e).__name__}: {e}"
        finally:
            self._forget(call)
        return call.result

    def _new_call(self, target: str, number: str) -> _Call:
        loop = asyncio.get_running_loop()
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.setblocking(False)
        rtp.bind((self.host, 0))
        call_id, tag, branch = uuid.uuid4().hex, uuid.uuid4().hex[:10], _branch()
        invite = self._invite(target, number, call_id, tag, branch, rtp.getsockname()[1])
        call = _Call(call_id, CallResult(number), rtp, tag, branch, invite, loop.create_future(),
                     loop.create_future())
        self.calls[call_id] = call
        loop.add_reader(rtp.fileno(), self._on_rtp, call)
        return call

    def _forget(self, call: _Call) -> None:
        self.calls.pop(call.call_id, None)
        asyncio.get_running_loop().remove_reader(call.rtp.fileno())
        call.rtp.close()

    async def _dial(self, call: _Call) -> None:
        call.result.invite_at = time.perf_counter()
        self._send(call.invite)
        retrans = asyncio.create_task(self._retransmit(call))
        try:
            answer = await call.final
        finally:
            retrans.cancel()
        if answer.status != 200:
            call.result.error = f"INVITE answered {answer.first}"
            return
        for key in call.keys:
            await self._after_prompt(call)
            await self._press(call, key)
        await call.bye
        if call.result.rtp_at is None:
            call.result.error = "hung up without sending RTP"
        elif call.keys and call.result.reply_at is None:
            call.result.error = "hung up without a prompt after the key"

    async def _retransmit(self, call: _Call) -> None:
        # RFC 3261 timer A: the first INVITE of a burst may be dropped by a busy server.
        delay = 0.5
        while not call.provisional.is_set():
            await asyncio.sleep(delay)
            if not call.provisional.is_set():
                self._send(call.invite)
            delay = min(delay * 2, 4.0)

    def _on_rtp(self, call: _Call) -> None:
        r = call.result
        while True:
            try:
                call.rtp.recv(2048)
            except OSError:  # drained (BlockingIOError) or closed
                return
            now = time.perf_counter()
            r.rtp_at = r.rtp_at or now
            call.last_rtp = now
            if r.key_at is not None and r.reply_at is None:
                r.reply_at = now
            if not call.keys:
                # Only the first packet matters: stop reading so 50 packets/s cost nothing.
                asyncio.get_running_loop().remove_reader(call.rtp.fileno())
                return

    async def _after_prompt(self, call: _Call, quiet: float = 0.3) -> None:
        """Until a prompt has played and no packet came for `quiet` seconds."""
        while call.result.rtp_at is None or time.perf_counter() - call.last_rtp < quiet:
            if call.bye.done():
                raise CallFailed("hung up before the key was pressed")
            idle = time.perf_counter() - call.last_rtp
            await asyncio.sleep(0.02 if call.result.rtp_at is None else quiet - idle)

    async def _press(self, call: _Call, key: str) -> None:
        """One key as RFC 4733 events: 20 ms apart while held, then three end packets."""
        call.keying, call.result.reply_at = True, None
        stamp = (call.seq + 1) * _RTP_FRAME  # one timestamp for all of the key's packets
        try:
            for i in range(_KEY_FRAMES):
                self._send_event(call, key, stamp, (i + 1) * _RTP_FRAME, first=i == 0)
                await asyncio.sleep(0.02)
            for i in range(3):
                self._send_event(call, key, stamp, _KEY_FRAMES * _RTP_FRAME, end=True)
                if not i:
                    call.result.key_at = time.perf_counter()  # the key counts from here
        finally:
            call.keying = False

    def _send_event(self, call: _Call, key: str, stamp: int, duration: int,
                    first: bool = False, end: bool = False) -> None:
        if call.media_to is None:
            return
        call.seq += 1
        header = struct.pack("!BBHII", 0x80, (0x80 if first else 0) | _EVENT_PT,
                             call.seq & 0xFFFF, stamp & 0xFFFFFFFF, call.ssrc)
        event = struct.pack("!BBH", _KEY_CODES[key], (0x80 if end else 0) | 10, duration)
        with contextlib.suppress(OSError):
            call.rtp.sendto(header + event, call.media_to)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        msg = parse(data)
        call = self.calls.get(msg.get("call-id"))
        if msg.status is None:
            self._on_request(msg, call)
        elif call is not None:
            self._on_response(msg, call)

    def _on_response(self, msg: Message, call: _Call) -> None:
        status = msg.status or 0
        call.provisional.set()
        if status < 200 or "INVITE" not in msg.get("cseq"):
            return
        if status >= 300:
            self._send(self._ack(call, msg, call.branch))  # same transaction as the INVITE
        elif call.ack is None:
            call.result.ok_at = time.perf_counter()
            call.media_to = sdp_media(msg.body)
            call.ack = self._ack(call, msg, _branch())
            self._send(call.ack)
            if call.media_to is not None:
                # A phone's first frame follows the answer at once; the baseline's Answer()
                # is waiting for it, so it must not wait for our next 20 ms tick.
                self._send_rtp(call)
        else:
            self._send(call.ack)  # a retransmitted 200 OK: our ACK was lost
        if not call.final.done():
            call.final.set_result(msg)

    def _on_request(self, msg: Message, call: _Call | None) -> None:
        method = msg.first.split(" ", 1)[0]
        if method == "ACK":
            return
        self._send(_reply(msg, 200 if call is not None or method == "OPTIONS" else 481))
        if method == "BYE" and call is not None:
            call.media_to = None
            if call.result.bye_at is None:
                call.result.bye_at = time.perf_counter()
            if not call.bye.done():
                call.bye.set_result(None)

    async def _stream_rtp(self) -> None:
        """Every 20 ms, one silent PCMU frame from each answered call, in one task."""
        next_tick = time.perf_counter()
        while True:
            for call in list(self.calls.values()):
                if call.media_to is not None and not call.keying:
                    self._send_rtp(call)
            next_tick += 0.02
            await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))

    def _send_rtp(self, call: _Call) -> None:
        assert call.media_to is not None
        call.seq += 1
        header = struct.pack("!BBHII", 0x80, 0, call.seq & 0xFFFF,
                             (call.seq * _RTP_FRAME) & 0xFFFFFFFF, call.ssrc)
        with contextlib.suppress(OSError):
            call.rtp.sendto(header + _SILENCE, call.media_to)

    def _invite(self, target: str, number: str, call_id: str, tag: str, branch: str,
                rtp_port: int) -> bytes:
        host, port = self.server
        sdp = (f"v=0\r\no=bench 1 1 IN IP4 {self.host}\r\ns=bench\r\nc=IN IP4 {self.host}\r\n"
               f"t=0 0\r\nm=audio {rtp_port} RTP/AVP 0 {_EVENT_PT}\r\n"
               f"a=rtpmap:0 PCMU/8000\r\na=rtpmap:{_EVENT_PT} telephone-event/8000\r\n"
               f"a=fmtp:{_EVENT_PT} 0-16\r\na=sendrecv\r\n")
        return _message(f"INVITE sip:{target}@{host}:{port} SIP/2.0", [
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch={branch};rport",
            f"From: <sip:{number}@{self.host}:{self.port}>;tag={tag}",
            f"To: <sip:{target}@{host}:{port}>",
            f"Call-ID: {call_id}", "CSeq: 1 INVITE",
            f"Contact: <sip:{number}@{self.host}:{self.port}>", "Max-Forwards: 70",
            "User-Agent: ctl-bench", "Content-Type: application/sdp",
        ], sdp)

    def _ack(self, call: _Call, answer: Message, branch: str) -> bytes:
        host, port = self.server
        uri = f"sip:{host}:{port}"
        contact = answer.get("contact")
        if answer.status == 200 and "<" in contact:
            uri = contact.split("<", 1)[1].split(">", 1)[0]  # a 2xx ACK goes to the Contact
        invite = parse(call.invite)
        return _message(f"ACK {uri} SIP/2.0", [
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch={branch};rport",
            f"From: {invite.get('from')}", f"To: {answer.get('to')}",
            f"Call-ID: {invite.get('call-id')}", "CSeq: 1 ACK", "Max-Forwards: 70",
        ])


def _reply(request: Message, status: int) -> bytes:
    reason = {200: "OK", 481: "Call/Transaction Does Not Exist"}[status]
    headers = [f"Via: {v}" for v in request.all("via")]
    headers += [f"{h}: {request.get(h.lower())}" for h in ("From", "To", "Call-ID", "CSeq")]
    return _message(f"SIP/2.0 {status} {reason}", headers)


def _message(first: str, headers: list[str], body: str = "") -> bytes:
    lines = [first, *headers, f"Content-Length: {len(body.encode())}", "", body]
    return "\r\n".join(lines).encode()


def _branch() -> str:
    return "z9hG4bK" + uuid.uuid4().hex[:16]


def _stage(r: CallResult) -> str:
    if r.ok_at is None:
        return "timed out waiting for 200 OK"
    if r.rtp_at is None:
        return "timed out waiting for RTP"
    if r.key_at is not None and r.reply_at is None:
        return "timed out waiting for the prompt after the key"
    return "timed out waiting for BYE"
